"""Seed 002: export events page by page with an opaque cursor.

`GET /export/events?start=&end=&pageSize=&cursor=&events=...` with `X-Api-Key: <key>`.
The export is keyset-paged in the order (`timestamp`, `messageId`, `connectionId`)
ascending: each page is an `EventQuery` with a `Seek` just after the last row of the page
before (a seek in the serving index's row order, not an offset). The cursor is signed
(`cursors.CursorSigner`) and carries the export's definition: the key's workspace, the
window, the event names, the key of the last row returned and the snapshot time. Events
received after the snapshot (`receivedAt` later than the first page's request) are not
part of the export, so it ends; compaction and reprocessing keep every event's key, so
every event that existed when the export started comes exactly once. Mapping of every
field: docs/seed-apis.md.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations.

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Header, Query, Response

from eventpipe.api.auth import Authenticator, scope_note
from eventpipe.api.errors import ApiError
from eventpipe.api.filters import compile_filter
from eventpipe.api.reader import EventReader
from eventpipe.api.seeds.common import (
    MAX_EPOCH_MS,
    MIN_EPOCH_MS,
    WorkspaceSource,
    bearer,
    epoch_ms,
    from_epoch_ms,
    iso_ms,
    key_of,
    workspace_of,
)
from eventpipe.api.seeds.context_json import json_objects, json_strings
from eventpipe.api.seeds.cursors import CursorSigner
from eventpipe.schemas.principal import READ_SCOPE, Principal
from eventpipe.serving.event_query import EventQuery, Seek, epoch_microseconds

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_EVENT_NAMES = 100
MAX_EVENT_NAME = 256
CURSOR_VERSION = 1
TYPES = ("page", "screen", "identify", "group", "alias")
"""Event types other than track: `@type` of such an event, and an `events` name that
selects them."""
COLUMNS = (
    "connectionId",
    "messageId",
    "timestamp",
    "userId",
    "type",
    "event",
    "context",
    "properties",
)
BEGINNING = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


def event_condition(names: list[str]) -> dict[str, Any] | None:
    """The condition of `events`: track events by name, or (when every name is one of
    TYPES) events of those types; a list mixing the two is a 400."""
    if not names:
        return None
    types = [n for n in names if n in TYPES]
    if types and len(types) < len(names):
        raise ApiError(
            400,
            "events",
            "give either track event names or event types (" + ", ".join(TYPES) + "), "
            "not both in one export",
        )
    if types:
        return {"property": "type", "operator": "is one of", "values": types}
    return {"property": "event", "operator": "is one of", "values": names}


def filter_document(definition: dict[str, Any]) -> dict[str, Any]:
    """The seed-000 filter of an export: its window, snapshot and event names."""
    conditions: list[dict[str, Any]] = [
        {
            "property": "receivedAt",
            "operator": "is on or before",
            "values": [iso_ms(definition["snap"])],
        }
    ]
    if definition["start"] is not None:
        conditions.append(
            {
                "property": "timestamp",
                "operator": "is on or after",
                "values": [iso_ms(definition["start"])],
            }
        )
    if definition["end"] is not None:
        conditions.append(
            {
                "property": "timestamp",
                "operator": "is before",
                "values": [iso_ms(definition["end"])],
            }
        )
    names = event_condition(definition["events"])
    if names is not None:
        conditions.append(names)
    return {"logical": "and", "conditions": conditions}


_ITEMS_SQL = """
SELECT coalesce(string_agg(json_object(
    'id', "messageId",
    'sessionId', CAST(context.session.id AS VARCHAR),
    'userId', "userId",
    'timestamp', epoch_us("timestamp") // 1000
        - CASE WHEN epoch_us("timestamp") % 1000 < 0 THEN 1 ELSE 0 END,
    'context', CASE WHEN context IS NOT NULL THEN json_strip_nulls(to_json(struct_update(
        context, session := CASE WHEN context.session IS NOT NULL THEN struct_pack(
            id := CAST(context.session.id AS VARCHAR), start := context.session.start) END)))
        END,
    'payload', json_merge_patch(
        CASE WHEN json_type(properties) = 'OBJECT' THEN properties ELSE '{}' END,
        json_object('@type', CASE WHEN "type" = 'track' THEN "event" ELSE "type" END))
  ), ',' ORDER BY _position), '')
FROM page
"""
_ITEMS_DB = duckdb.connect(":memory:", config={"memory_limit": "256MB", "threads": 1})
_ITEMS_DB.execute("SET enable_external_access = false")


KEPT = frozenset({"session"})
"""Children of `context` the shaping SQL names: never pruned."""


def present(array: pa.StructArray, kept: frozenset[str] = frozenset()) -> pa.StructArray:
    """`array` (without offset) without its children that are null in every row (and
    likewise inside its struct children), except `kept`: the JSON of the page is the same,
    as the shaping strips nulls, and DuckDB's to_json has fewer fields to write. A struct
    left without a child keeps its first (null) one: it is still written as `{}`."""
    fields, children = [], []
    for i, field in enumerate(array.type):
        child = array.field(i)
        if field.name not in kept:
            if child.null_count == len(child):
                continue
            if pa.types.is_struct(field.type):
                child = present(child)
        fields.append(pa.field(field.name, child.type))
        children.append(child)
    if not children:
        fields, children = [array.type.field(0)], [array.field(0)]
    mask = array.is_null() if array.null_count else None
    return pa.StructArray.from_arrays(children, fields=fields, mask=mask)


def export_items(rows: pa.Table) -> bytes:
    """The seed's items of `rows` as the JSON text of an array (see docs/seed-apis.md for
    each field): written with Arrow string kernels (`arrow_items`) when the page allows
    it, else by DuckDB (`shaped_items`), the `context` children null in every row of the
    page left out first (`present`: the same text, written faster)."""
    if not rows.num_rows:
        return b"[]"
    if rows.column("context").num_chunks > 1:  # one chunk, as the other columns
        rows = rows.combine_chunks()
    context = rows.column("context").chunk(0)
    if context.offset:  # its children would carry the offset: DuckDB refuses them
        context = context.take(pa.array(range(len(context)), pa.int64()))
    context = present(context, KEPT)
    rows = rows.set_column(rows.schema.get_field_index("context"), "context", context)
    return arrow_items(rows) or shaped_items(rows)


_PAYLOAD_SQL = """
SELECT json_merge_patch(
    CASE WHEN json_type(properties) = 'OBJECT' THEN properties ELSE '{}' END,
    json_object('@type', CASE WHEN "type" = 'track' THEN "event" ELSE "type" END)) AS payload
FROM page
"""


def arrow_items(rows: pa.Table) -> bytes | None:
    """The items of `rows` (one chunk, `context` without offset) as `shaped_items` writes
    them, assembled with Arrow string kernels; only `payload` (which parses the
    properties) is DuckDB's. None when a value is of a kind only DuckDB writes here (a
    float or decimal in `context`, a control character in a string)."""
    context = rows.column("context").chunk(0)
    session = context.field("session")
    texts = pa.StructArray.from_arrays(
        [session.field("id").cast(pa.string()), session.field("start")],
        names=["id", "start"],
        mask=session.is_null() if session.null_count else None,
    )
    index = context.type.get_field_index("session")
    children = [texts if i == index else context.field(i) for i in range(context.type.num_fields)]
    fields = [texts.type if i == index else f.type for i, f in enumerate(context.type)]
    names = [f.name for f in context.type]
    context = pa.StructArray.from_arrays(
        children,
        fields=[pa.field(n, t) for n, t in zip(names, fields, strict=True)],
        mask=context.is_null() if context.null_count else None,
    )
    stamp = rows.column("timestamp").chunk(0).cast(pa.int64())
    whole = pc.divide(stamp, 1000)  # truncated toward zero: floored below
    millis = pc.subtract(
        whole, pc.less(pc.subtract(stamp, pc.multiply(whole, 1000)), 0).cast(pa.int64())
    )
    parts = [
        json_strings(rows.column("messageId").chunk(0)),
        json_strings(context.flatten()[index].flatten()[0]),  # null where a parent is
        json_strings(rows.column("userId").chunk(0)),
        millis.cast(pa.string()),
        json_objects(context),
    ]
    if any(part is None for part in parts):
        return None
    payload = _payloads(rows.select(["type", "event", "properties"]))
    items = pc.binary_join_element_wise(
        '{"id":',
        *_interleave(parts, (',"sessionId":', ',"userId":', ',"timestamp":', ',"context":')),
        ',"payload":',
        payload,
        "}",
        "",
    )
    listed = pa.ListArray.from_arrays(pa.array([0, len(items)], pa.int32()), items)
    return b"[" + pc.binary_join(listed, ",")[0].as_buffer().to_pybytes() + b"]"


def _interleave(parts: list[pa.Array | None], names: tuple[str, ...]) -> list[object]:
    """parts[0], names[0], parts[1], ... with null parts written as JSON null."""
    out: list[object] = []
    for i, part in enumerate(parts):
        out.append(pc.fill_null(part, "null"))
        if i < len(names):
            out.append(names[i])
    return out


def _payloads(rows: pa.Table) -> pa.Array:
    """The `payload` of each row, written by DuckDB."""
    cursor = _ITEMS_DB.cursor()  # one per request: connections are not thread-safe
    try:
        cursor.register("page", rows)
        found = cursor.sql(_PAYLOAD_SQL).to_arrow_table().column("payload")
    finally:
        cursor.close()
    return found.combine_chunks().cast(pa.string())


def shaped_items(rows: pa.Table) -> bytes:
    """The items of `rows` as the JSON text of an array, built by DuckDB in one statement:
    no Python per event."""
    table = rows.append_column("_position", pa.array(range(rows.num_rows), pa.int64()))
    cursor = _ITEMS_DB.cursor()  # one per request: connections are not thread-safe
    try:
        cursor.register("page", table)
        joined = cursor.execute(_ITEMS_SQL).fetchone()
    finally:
        cursor.close()
    return b"[" + str(joined[0] if joined else "").encode() + b"]"


def metadata(catalog: WorkspaceSource | None, principal: Principal) -> dict[str, Any]:
    """The seed's metadata block, from the catalog (null where it has nothing)."""
    workspace = workspace_of(catalog, principal)
    application: tuple[str | None, str | None] = (None, None)
    if workspace is not None and catalog is not None:
        connections = catalog.connections_of(workspace.id)
        if len(connections) == 1 and connections[0].name:
            application = (connections[0].name, str(connections[0].id))
    return {
        "organizationName": None,
        "organizationSlug": None,
        "workspaceName": workspace.name if workspace else None,
        "workspaceSlug": workspace.slug if workspace else None,
        "applicationName": application[0],
        "applicationSlug": application[1],
    }


def _check_window(start: int | None, end: int | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and not MIN_EPOCH_MS <= value <= MAX_EPOCH_MS:
            raise ApiError(400, name, f"must be between {MIN_EPOCH_MS} and {MAX_EPOCH_MS}")
    if start is not None and end is not None and end <= start:
        raise ApiError(400, "end", "must be greater than start")


def _check_events(events: list[str]) -> list[str]:
    if len(events) > MAX_EVENT_NAMES:
        raise ApiError(400, "events", f"at most {MAX_EVENT_NAMES} event names")
    for i, name in enumerate(events):
        if not 1 <= len(name) <= MAX_EVENT_NAME:
            raise ApiError(400, f"events[{i}]", f"must be 1 to {MAX_EVENT_NAME} characters")
    return sorted(set(events))


def definition_of(
    signer: CursorSigner,
    principal: Principal,
    cursor: str | None,
    asked: dict[str, Any],
    now_ms: int,
) -> dict[str, Any]:
    """The export's definition: from the cursor (which must be this workspace's, and agree
    with any parameter given again), else from the parameters with the snapshot `now_ms`."""
    if not cursor:
        return {"v": CURSOR_VERSION, "w": principal.workspace, "snap": now_ms, "key": None, **asked}
    definition = signer.open(cursor)
    if definition.get("v") != CURSOR_VERSION or definition.get("w") != principal.workspace:
        raise ApiError(400, "cursor", "is not a cursor of this key's workspace")
    for name in ("start", "end", "events"):
        if asked[name] not in (None, [], definition[name]):
            raise ApiError(400, name, f"differs from the export the cursor continues ({name})")
    return definition


def seek_of(definition: dict[str, Any]) -> Seek:
    """Where the page starts: after the cursor's last row, else at the window's start."""
    key = definition["key"]
    if key is not None:
        stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=key[0])
        return Seek(stamp, key[1], key[2])
    start = definition["start"]
    return Seek(BEGINNING if start is None else from_epoch_ms(start))


def signer_for(catalog: object | None, lake: str | None) -> CursorSigner:
    """The cursor signer of a server: its secret is kept beside the catalog (the lake's, or
    --catalog's with the BigQuery backend), else in the lake folder, else in memory."""
    folder = getattr(catalog, "path", None)
    if folder is not None:
        return CursorSigner.for_folder(Path(folder).parent)
    return CursorSigner.for_folder(lake if lake and "://" not in lake else None)


def register(
    app: FastAPI,
    reader: EventReader,
    authenticator: Authenticator,
    catalog: WorkspaceSource | None,
    signer: CursorSigner,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> None:
    """Add seed 002's route to `app`; cursors are signed by `signer`, the snapshot of a new
    export read from `clock`."""

    @app.get(
        "/export/events",
        summary="Export events (seed 002)",
        description="The key's workspace's events in the window [start, end) (ms since the "
        "epoch), oldest first, `pageSize` at a time; pass `nextCursor` back as `cursor` "
        "until it is empty. Send `X-Api-Key: <key>`. " + scope_note("read"),
        tags=["seed 002"],
    )
    def export_events(
        start: Annotated[
            int | None, Query(description="Earliest event time (ms), inclusive.")
        ] = None,
        end: Annotated[int | None, Query(description="Latest event time (ms), exclusive.")] = None,
        pageSize: Annotated[
            int, Query(ge=1, le=MAX_PAGE_SIZE, description="Events per page.")
        ] = DEFAULT_PAGE_SIZE,
        cursor: Annotated[
            str | None, Query(description="The `nextCursor` of the page before.")
        ] = None,
        events: Annotated[list[str] | None, Query(description="Event names (repeatable).")] = None,
        x_api_key: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        key = key_of(x_api_key, bearer(authorization))
        if key is None:
            raise ApiError(401, "X-Api-Key", "missing key (X-Api-Key: <key>)")
        principal = authenticator.authorize(key, READ_SCOPE)
        _check_window(start, end)
        asked = {"start": start, "end": end, "events": _check_events(events or [])}
        definition = definition_of(signer, principal, cursor, asked, epoch_ms(clock()))
        query = EventQuery(
            connections=principal.connections,
            columns=COLUMNS,
            predicate=compile_filter(filter_document(definition), dialect=reader.dialect),
            ascending=True,
            limit=pageSize + 1,
            seek=seek_of(definition),
        )
        rows = reader.list_events(query)
        page = rows.slice(0, pageSize)
        next_cursor = ""
        if rows.num_rows > pageSize:
            last = page.slice(pageSize - 1).to_pylist()[0]
            key_of_last = [
                epoch_microseconds(last["timestamp"]),
                last["messageId"],
                last["connectionId"],
            ]
            next_cursor = signer.sign({**definition, "key": key_of_last})
        body = (
            b'{"metadata":' + orjson.dumps(metadata(catalog, principal))
            + b',"items":' + export_items(page)
            + b',"nextCursor":' + orjson.dumps(next_cursor) + b"}"
        )  # fmt: skip
        return Response(body, media_type="application/json")
