"""Erasure requests and records in `LAKE/_erasures/` (docs/erasure.md, "Over HTTP").

- `requests/<id>.json`: a request of the HTTP API (`status: pending`), holding the ids to
  erase and the workspace of the admin key; `eventpipe erase --requests` executes it and
  replaces it by its record (`status: done`): counts per table, run id, times, and keyed
  hashes of the ids (`id_proof`), never the ids themselves.
- `key`: the lake's random key of those hashes (created once, mode 0600).

Each file is replaced whole and durably (`core.files.replace_durably`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import UTC, datetime

from eventpipe.core.files import replace_durably
from eventpipe.core.ids import time_ordered_id
from eventpipe.io.erasure_match import ANONYMOUS, KPID, USER, id_proof

ERASURES = "_erasures"
REQUESTS = "requests"
KEY_FILE = "key"
PENDING = "pending"
DONE = "done"
_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
KINDS = {USER: "userIds", ANONYMOUS: "anonymousIds", KPID: "kpids"}


def erasures_folder(lake: str) -> str:
    return os.path.join(lake, ERASURES)


def erasure_key(lake: str) -> bytes:
    """The lake's key of the id hashes in erasure records (created on first use)."""
    path = os.path.join(erasures_folder(lake), KEY_FILE)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile by another process
        return erasure_key(lake)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
        handle.flush()
        os.fsync(handle.fileno())
    return erasure_key(lake)


def id_proofs(lake: str, ids: dict[str, list[str]]) -> dict[str, list[str]]:
    """`{kind: [ids]}` as `{kind: [keyed hashes]}` for a record."""
    key = erasure_key(lake)
    return {
        kind: sorted(id_proof(key, kind, value) for value in values) for kind, values in ids.items()
    }


def _path(lake: str, request_id: str) -> str:
    if not _ID.match(request_id):
        raise ValueError(f"not an erasure request id: {request_id!r}")
    return os.path.join(erasures_folder(lake), REQUESTS, f"{request_id}.json")


def _write(lake: str, record: dict) -> None:
    path = _path(lake, record["id"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    replace_durably(path, json.dumps(record, indent=2).encode())


def submit_request(lake: str, workspace: int | None, ids: dict[str, list[str]]) -> dict:
    """Record a pending request to erase `ids` (`{kind: [ids]}`) in `workspace` (None: the
    whole lake); returns it."""
    now = datetime.now(UTC)
    record = {
        "id": time_ordered_id(now),
        "status": PENDING,
        "workspace": workspace,
        "received": now.isoformat(timespec="seconds"),
        "ids": {kind: sorted(set(ids.get(kind, []))) for kind in KINDS},
    }
    _write(lake, record)
    return record


def read_request(lake: str, request_id: str) -> dict | None:
    """A request or its record (None: no such request)."""
    try:
        with open(_path(lake, request_id), "rb") as handle:
            return json.loads(handle.read())
    except (FileNotFoundError, ValueError):
        return None


def pending_requests(lake: str) -> list[dict]:
    """The requests not executed yet, oldest first."""
    folder = os.path.join(erasures_folder(lake), REQUESTS)
    names = (
        sorted(n for n in os.listdir(folder) if n.endswith(".json"))
        if os.path.isdir(folder)
        else []
    )
    found = (read_request(lake, n.removesuffix(".json")) for n in names)
    return [r for r in found if r is not None and r.get("status") == PENDING]


def finish_request(lake: str, request: dict, outcome: dict) -> dict:
    """Replace a pending request by its record: `outcome` (counts, run id...) and the ids'
    hashes instead of the ids."""
    record = {k: v for k, v in request.items() if k != "ids"}
    record.update(outcome, status=DONE, ids=id_proofs(lake, request["ids"]))
    record["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write(lake, record)
    return record
