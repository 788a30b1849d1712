"""The listener endpoints of seed 000: `POST /v1/events/listeners`,
`GET /v1/events/listeners/{id}`, `DELETE /v1/events/listeners/{id}` (admin scope).

A listener belongs to the workspace of the admin key that created it: another workspace's
key gets a 404 for it, as for an id that does not exist. A key without a workspace (a
legacy `--api-key`, which has no admin scope anyway, or `--insecure-no-auth`) gets a 403.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

import logging
import sqlite3
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from eventpipe.api.auth import Authenticator
from eventpipe.api.bodies import read_body
from eventpipe.api.errors import ApiError
from eventpipe.api.filters import compile_filter
from eventpipe.api.limits import ServerBusy
from eventpipe.listeners.store import (
    DEFAULT_IDLE_SECONDS,
    DEFAULT_SIZE,
    MAX_LISTENERS,
    MAX_SIZE,
    ListenerStore,
    TooManyListeners,
)
from eventpipe.query.language import MAX_FILTER_BYTES
from eventpipe.schemas.principal import ADMIN_SCOPE, Principal

log = logging.getLogger(__name__)

MAX_BODY_BYTES = MAX_FILTER_BYTES + 4096  # the filter's own limit, and the other fields
FIELDS = ("connectionId", "size", "filter")
NO_LISTENER = "event listener does not exist"

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request: `error.parameter` names the field."},
    401: {"description": "Missing, invalid or revoked key."},
    403: {"description": "The key lacks the admin scope, or has no workspace (legacy key)."},
    503: {"description": "The listeners' file could not be written or read; retry."},
}
_CREATE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "connectionId": {
                        "type": ["integer", "null"],
                        "description": "Observe this connection of the workspace only "
                        "(null: every connection of the workspace).",
                    },
                    "size": {
                        "type": ["integer", "null"],
                        "minimum": 1,
                        "maximum": MAX_SIZE,
                        "description": f"Events held between two reads (default {DEFAULT_SIZE}"
                        "; null: the default).",
                    },
                    "filter": {
                        "type": ["object", "null"],
                        "description": "The read API's filter (see GET /v1/events); null: "
                        "every event.",
                    },
                },
                "additionalProperties": False,
            }
        }
    },
}


def install_listener_routes(
    app: FastAPI, store: ListenerStore, idle_seconds: float = DEFAULT_IDLE_SECONDS
) -> None:
    """Add the three listener routes to `app` (the read API of `create_app`), ahead of
    the collector's `POST /v1/events/{type}`."""
    try:
        store.purge()  # what expired while no process of the lake ran
    except sqlite3.Error as exc:
        log.warning("listeners: removing expired listeners failed: %s", exc)
    auth: Authenticator = app.state.authenticator
    admin = Depends(auth.require(ADMIN_SCOPE))
    before = len(app.router.routes)

    @app.post(
        "/v1/events/listeners",
        tags=["listeners"],
        summary="Create event listener",
        description="Creates a listener of the events the collector accepts for the key's "
        "workspace (or one `connectionId` of it), after normalisation and enrichment, "
        "matching `filter`. It holds the first `size` matching events until it is read, and "
        "counts the others as omitted. Removed when not read for "
        f"{idle_seconds:g} seconds. Needs a key with the `admin` scope.",
        openapi_extra={"requestBody": _CREATE_BODY},
        responses={
            **_ERRORS,
            422: {
                "description": "connection does not exist (in the key's workspace), or "
                f"there are already {MAX_LISTENERS} listeners"
            },
        },
        response_description='`{"id": "<uuid>"}`',
    )
    async def create_listener(request: Request, principal: Annotated[Principal, admin]) -> Response:
        workspace = _workspace(principal)
        body = await read_body(request, MAX_BODY_BYTES)
        connection, size, filter_json = parse_create(body, principal)
        try:
            listener = await run_in_threadpool(
                _stored, store.create, workspace, connection, size, filter_json, idle_seconds
            )
        except TooManyListeners:
            raise ApiError(422, None, f"there are already {MAX_LISTENERS} listeners") from None
        return _json({"id": listener})

    @app.get(
        "/v1/events/listeners/{id}",
        tags=["listeners"],
        summary="List observed events",
        description="The events the listener captured since it was last read (at most its "
        "`size`, in the order they were accepted, in GET /v1/events' shape) and how many "
        "others matched meanwhile (`omitted`); reading empties it. Needs a key with the "
        "`admin` scope.",
        responses={**_ERRORS, 404: {"description": NO_LISTENER}},
        response_description='`{"events": [...], "omitted": N}`',
    )
    def list_observed(
        listener: Annotated[str, Path(alias="id", max_length=64)],
        principal: Annotated[Principal, admin],
    ) -> Response:
        observed = _stored(store.read, listener, _workspace(principal))
        if observed is None:
            raise ApiError(404, "id", NO_LISTENER)
        events = b",".join(observed.events)
        body = b'{"events":[' + events + b'],"omitted":' + str(observed.omitted).encode() + b"}"
        return Response(body, media_type="application/json")

    @app.delete(
        "/v1/events/listeners/{id}",
        tags=["listeners"],
        status_code=204,
        summary="Delete event listener",
        description="Deletes the listener and what it holds; does nothing when it does not "
        "exist. Needs a key with the `admin` scope.",
        responses=_ERRORS,
    )
    def delete_listener(
        listener: Annotated[str, Path(alias="id", max_length=64)],
        principal: Annotated[Principal, admin],
    ) -> Response:
        _stored(store.delete, listener, _workspace(principal))
        return Response(status_code=204)

    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added


def parse_create(body: bytes, principal: Principal) -> tuple[int | None, int, str | None]:
    """(connection, size, filter as JSON text) of a create request; ApiError 400/422."""
    try:
        doc = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "body", "the body must be a JSON object")
    for name in doc:
        if name not in FIELDS:
            raise ApiError(400, name, f"unknown field; the fields are {', '.join(FIELDS)}")
    connection = doc.get("connectionId")
    if connection is not None:
        if not _is_int(connection):
            raise ApiError(400, "connectionId", "connectionId must be an integer or null")
        if principal.connections is None or connection not in principal.connections:
            raise ApiError(422, "connectionId", "connection does not exist")
    size = doc.get("size")
    if size is None:
        size = DEFAULT_SIZE
    elif not _is_int(size) or not 1 <= size <= MAX_SIZE:
        raise ApiError(400, "size", f"size must be an integer between 1 and {MAX_SIZE}")
    document = doc.get("filter")
    if document is None:
        return connection, size, None
    compile_filter(document, "filter")  # FilterError: a 400 naming the part at fault
    return connection, size, orjson.dumps(document).decode()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _workspace(principal: Principal) -> int:
    if principal.workspace is None:
        raise ApiError(
            403,
            "Authorization",
            "event listeners belong to a workspace: use an admin key of the workspace",
        )
    return principal.workspace


def _stored(action: Any, *args: Any) -> Any:
    """`action(*args)` on the store; a 503 when its file cannot be written or read."""
    try:
        return action(*args)
    except sqlite3.Error as exc:
        raise ServerBusy(f"the listeners' file cannot be used ({exc}); retry") from None


def _json(value: object) -> Response:
    return Response(orjson.dumps(value), media_type="application/json")
