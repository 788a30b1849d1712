"""The erasure endpoints (admin keys): a request recorded durably, executed by
`eventpipe erase --requests` in a process the server starts (docs/erasure.md).

- `DELETE /v1/users/{userId}` and `POST /v1/erasures {"userIds", "anonymousIds",
  "kpids"}` -> 202 `{"id", "status": "pending"}` (Location: the status URL);
- `GET /v1/erasures/{id}` -> the request's status: `pending`, then `done` with counts per
  table; never the ids. A request of another workspace is a 404, as an unknown one.

An admin key erases in its own workspace only (its connections, resolved when the job
runs); a server run with `--insecure-no-auth` erases in the whole lake.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at
# runtime (the `Admin` dependency is local to `install_erasures`).

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from eventpipe.api.auth import Authenticator
from eventpipe.api.errors import ApiError
from eventpipe.io.erasure_match import USER
from eventpipe.io.erasure_requests import (
    KINDS,
    PENDING,
    pending_requests,
    read_request,
    submit_request,
)
from eventpipe.schemas.principal import ADMIN_SCOPE, Principal

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_IDS = 1000  # ids of one request
MAX_ID_CHARS = 1024
MAX_PENDING = 100  # pending requests of one workspace
STATUS_FIELDS = ("id", "status", "received", "finished", "counts", "run_id")


class ErasureJobs:
    """Runs `eventpipe erase --lake LAKE --requests` in its own process: one at a time per
    server (each executes every pending request); a request that arrives while one runs
    gets one more run after it, so requests never start more than two processes."""

    def __init__(self, lake: str, extra_args: Sequence[str] = (), wait_seconds: int = 3600) -> None:
        self.command = [
            sys.executable, "-m", "eventpipe.jobs.cli", "erase", "--lake", lake, "--requests",
            "--wait", str(wait_seconds), *extra_args,
        ]  # fmt: skip
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def start(self) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                subprocess.run(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    check=False,
                )
            except OSError as exc:  # the request stays pending: `erase --requests` runs it
                log.error("cannot start the erasure job: %s", exc)
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False


def _ids(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ApiError(422, name, f"{name} must be an array of non-empty strings")
    if any(len(v) > MAX_ID_CHARS for v in value):
        raise ApiError(422, name, f"an id of {name} is longer than {MAX_ID_CHARS} characters")
    return value


async def _body(request: Request) -> dict:
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "body", f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        doc = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body", f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "body", "the body must be a JSON object")
    unknown = set(doc) - set(KINDS.values())
    if unknown:
        raise ApiError(422, sorted(unknown)[0], f"unknown field; expected {sorted(KINDS.values())}")
    return doc


def install_erasures(app: FastAPI, lake: str, start_job: Callable[[], None]) -> None:
    """Add the erasure endpoints to `app` (its `app.state.authenticator` checks the keys)."""
    auth: Authenticator = app.state.authenticator
    router = APIRouter(tags=["erasure"])
    Admin = Annotated[Principal, Depends(auth.require(ADMIN_SCOPE))]

    def submit(principal: Principal, ids: dict[str, list[str]]) -> JSONResponse:
        total = sum(len(v) for v in ids.values())
        if total == 0:
            raise ApiError(422, "userIds", "give at least one id (userIds, anonymousIds, kpids)")
        if total > MAX_IDS:
            raise ApiError(422, "userIds", f"at most {MAX_IDS} ids per request")
        waiting = [r for r in pending_requests(lake) if r["workspace"] == principal.workspace]
        if len(waiting) >= MAX_PENDING:
            raise ApiError(429, None, f"{MAX_PENDING} erasure requests are pending; retry later")
        request = submit_request(lake, principal.workspace, ids)
        start_job()
        body = {"id": request["id"], "status": PENDING}
        headers = {"Location": f"/v1/erasures/{request['id']}"}
        return JSONResponse(body, status_code=202, headers=headers)

    @router.delete(
        "/v1/users/{user_id}",
        status_code=202,
        summary="Erase a user",
        description="Erase every event and trace of this userId in the key's workspace "
        "(asynchronous: poll the status URL). Needs a key with the `admin` scope.",
    )
    def erase_user(user_id: str, principal: Admin) -> JSONResponse:
        return submit(principal, {USER: _ids([user_id], "userId")})

    @router.post(
        "/v1/erasures",
        status_code=202,
        summary="Erase people",
        description='`{"userIds": [...], "anonymousIds": [...], "kpids": [...]}`: erase their '
        "data in the key's workspace (asynchronous). Needs a key with the `admin` scope.",
    )
    async def erase_many(request: Request, principal: Admin) -> JSONResponse:
        doc = await _body(request)
        ids = {kind: _ids(doc.get(name), name) for kind, name in KINDS.items()}
        return submit(principal, ids)

    @router.get(
        "/v1/erasures/{request_id}",
        summary="Erasure status",
        description="`pending`, or `done` with the rows removed per place. Needs `admin`.",
    )
    def erasure_status(request_id: str, principal: Admin) -> dict:
        record = read_request(lake, request_id)
        if record is None or record.get("workspace") != principal.workspace:
            raise ApiError(404, "id", f"no erasure request {request_id}")
        return {k: record[k] for k in STATUS_FIELDS if k in record}

    app.include_router(router)
