"""Helpers of the erasure tests (imported as `erasure_support`): a lake holding one person's
data in every place (events, raw, failed, landing imported and not, identity, index) beside
other people's, and independent checks of what holds the person's ids afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from collector_support import Tenant, make_tenant

from eventpipe.catalog import Catalog
from eventpipe.collector.requests import envelope_line
from eventpipe.io.landing import SegmentWriter, landing_folder
from eventpipe.jobs.cli import main

PERSON = "user-erase-me-7f3a"
PERSON_ANON = "anon-erase-me-9c1b"
LOOKALIKE = PERSON + "-2"  # another person, whose id starts with the person's
OTHERS = ("user-bob", "user-carol", LOOKALIKE)
BOTH = ["--user-id", PERSON, "--anonymous-id", PERSON_ANON]  # the erase flags of the person
DAYS = ("2026-11-20", "2026-11-21", "2026-11-22")


def event(day: str, user: str | None = None, anon: str | None = None, **extra: Any) -> dict:
    """A valid track event of `day` (a unique messageId)."""
    body: dict[str, Any] = {
        "type": "track",
        "event": "Clicked",
        "messageId": str(uuid.uuid4()),
        "timestamp": f"{day}T10:00:00Z",
        "properties": {"button": "buy"},
    }
    if user:
        body["userId"] = user
    if anon:
        body["anonymousId"] = anon
    body.update(extra)
    return body


def envelope(connection: int, *events: dict, received: str = "2026-11-22T12:00:00Z") -> bytes:
    """One landing envelope (a collector's line) holding a batch of `events`."""
    return envelope_line(received, "203.0.113.9", connection, orjson.dumps({"batch": events}))


def land(lake: Path, *lines: bytes) -> None:
    """Write one closed landing segment holding `lines`, as a collector does."""
    writer = SegmentWriter(landing_folder(str(lake)))
    writer.append(b"".join(lines))
    writer.close()


@dataclass(frozen=True)
class ErasureLake:
    path: Path
    a: Tenant  # the person's workspace
    b: Tenant  # another workspace, where the same userId exists too


def imported_batches(a: int, b: int) -> list[bytes]:
    """The envelopes imported into the lake: the person on two days, in mixed batches, in
    both workspaces; invalid events of theirs and of others; a day without them."""
    return [
        envelope(
            a,
            event(DAYS[0], PERSON, PERSON_ANON),
            event(DAYS[0], "user-bob", "anon-bob"),
            event(DAYS[0], None, PERSON_ANON),
            event(DAYS[0], "user-carol"),
        ),
        envelope(
            a,
            event(DAYS[1], PERSON),
            event(DAYS[1], LOOKALIKE, properties={"friend": PERSON + "x"}),
            {
                "type": "alias",
                "userId": "user-bob",
                "previousId": "user-bob-old",
                "messageId": str(uuid.uuid4()),
                "timestamp": f"{DAYS[1]}T10:00:00Z",
            },
        ),
        envelope(
            a,
            event(DAYS[0], PERSON, event=None),  # invalid: no event name
            event(DAYS[0], "user-bob", event=None, properties={"ref": LOOKALIKE}),
        ),
        envelope(b, event(DAYS[0], PERSON), event(DAYS[0], "user-dave")),
        envelope(a, event(DAYS[2], "user-carol"), event(DAYS[2], "user-bob")),
    ]


def build_lake(root: Path) -> ErasureLake:
    """The lake: two workspaces, imported landing segments, the identity graph, the serving
    index, and one closed segment not imported yet (the person and bob)."""
    lake = root / "lake"
    catalog = Catalog.in_lake(lake)
    a, b = make_tenant(catalog, "alpha"), make_tenant(catalog, "beta")
    batches = imported_batches(a.connection, b.connection)
    land(lake, *batches[:3])
    land(lake, *batches[3:])
    assert main(["import", "--landing", "--lake", str(lake), "--no-enrich"]) == 0
    assert main(["identity", "--lake", str(lake)]) == 0
    assert main(["compact", "--lake", str(lake)]) == 0
    land(lake, envelope(a.connection, event(DAYS[1], PERSON), event(DAYS[1], "user-bob")))
    return ErasureLake(lake, a, b)


# --- independent checks ------------------------------------------------------------------

ID_COLUMNS = ('"userId"', '"anonymousId"', '"previousId"')


def table_rows(lake: Path, table: str) -> list[dict]:
    """Every row of a lake table, as dicts (empty when the table has no file)."""
    files = sorted((lake / table).glob("date=*/*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def is_persons_event(row: dict, ids: tuple[str, ...] = (PERSON, PERSON_ANON)) -> bool:
    return any(row.get(c) in ids for c in ("userId", "anonymousId", "previousId"))


def is_persons_archive(row: dict, ids: tuple[str, ...] = (PERSON, PERSON_ANON)) -> bool:
    payload = json.loads(row["payload"])
    return any(payload.get(c) in ids for c in ("userId", "anonymousId", "previousId"))


def carries(text: str, ids: tuple[str, ...] = (PERSON, PERSON_ANON)) -> bool:
    """Whether `text` holds one of the ids as a whole word (not inside a longer id)."""
    return any(re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", text) for i in ids)


def checksum(rows: list[dict]) -> str:
    """An order-independent checksum of rows."""
    lines = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def others(lake: Path) -> dict[str, tuple[int, str]]:
    """(count, checksum) of everyone else's rows, per table."""
    events = [r for r in table_rows(lake, "events") if not is_persons_event(r)]
    raw = [r for r in table_rows(lake, "raw") if not is_persons_archive(r)]
    failed = [r for r in table_rows(lake, "failed") if not carries(r["raw"])]
    return {
        name: (len(rows), checksum(rows))
        for name, rows in (("events", events), ("raw", raw), ("failed", failed))
    }


def files_holding(lake: Path, ids: tuple[str, ...] = (PERSON, PERSON_ANON)) -> list[str]:
    """Every file of the lake that holds one of the ids: Parquet and Arrow files read with
    pyarrow (every value of every column, nested ones included), every other file grepped
    byte for byte."""
    found = []
    for folder, _, names in os.walk(lake):
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".parquet"):
                text = json.dumps(pq.read_table(path).to_pylist(), default=str)
            elif name.endswith(".arrow"):
                with ipc.open_file(path) as reader:
                    text = json.dumps(reader.read_all().to_pylist(), default=repr)
            else:
                text = Path(path).read_bytes().decode("latin-1")
            if carries(text, ids):
                found.append(os.path.relpath(path, lake))
    return sorted(found)


def erased_line(output: str) -> dict[str, int]:
    """The counts of the job's `erased: events N, archive N, ...` line."""
    line = next(x for x in output.splitlines() if x.startswith("erased: "))
    return {k: int(v) for k, v in (p.split() for p in line.removeprefix("erased: ").split(", "))}
