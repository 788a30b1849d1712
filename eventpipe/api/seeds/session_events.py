"""Seed 001: the events of one session.

`POST /public/{projectKey}/sessions/{sessionId}/events` with `Authorization: Bearer <key>`:
the body's time window, filters and paging become a seed-000 filter document (the session
condition `context.session.id is <sessionId>` always first) and an `EventQuery` of the
project's connections; the reader's rows are shaped into the seed's events. Mapping of
every field: docs/seed-apis.md.
"""

# No `from __future__ import annotations`: FastAPI and pydantic read the annotations.

import re
from typing import Annotated, Any, Literal

import orjson
import pyarrow as pa
from fastapi import FastAPI, Header, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from eventpipe.api.auth import Authenticator, scope_note
from eventpipe.api.bodies import read_body
from eventpipe.api.errors import ApiError
from eventpipe.api.filters import FilterError, compile_filter
from eventpipe.api.query import ORDER_COLUMNS
from eventpipe.api.reader import EventReader
from eventpipe.api.rows import event_from_row
from eventpipe.api.seeds.common import (
    MAX_BODY_BYTES,
    MAX_EPOCH_MS,
    WorkspaceSource,
    bearer,
    epoch_ms,
    iso_ms,
    parse_body,
    project_scope,
)
from eventpipe.query.tree import resolve_property
from eventpipe.schemas import TOP_LEVEL_COLUMNS
from eventpipe.schemas.principal import READ_SCOPE
from eventpipe.serving.event_query import EventQuery

MIN_START_MS = 946_684_800_000  # 2000-01-01, the seed's minimum
MAX_SESSION_ID = 256
MAX_PAGE_SIZE = 200
MAX_FIRST = 1_000_000_000  # as GET /v1/events' `first`
MAX_FILTERS = 50
MAX_FILTER_VALUES = 10
MAX_TEXT = 256

EVENT_NAMES = {
    "page": "$pageview",
    "screen": "$screen",
    "identify": "$identify",
    "group": "$groupidentify",
    "alias": "$create_alias",
}
"""`$event_name` of the types other than track (a track event's is its `event`)."""
SORT_ALIASES = {"created_at": "timestamp", "event_id": "messageId"}
"""Response field names accepted as `sortBy`, besides the event columns (ORDER_COLUMNS)."""
OPERATORS = {
    "is": ("is", "is one of"),
    "isNot": ("is not", "is not one of"),
    "contains": ("contains", None),
    "notContains": ("does not contain", None),
    "startsWith": ("starts with", None),
    "endsWith": ("ends with", None),
    "greaterThan": ("is greater than", None),
    "greaterThanOrEqual": ("is greater than or equal to", None),
    "lessThan": ("is less than", None),
    "lessThanOrEqual": ("is less than or equal to", None),
    "isAny": ("exists", None),
    "isUndefined": ("does not exist", None),
}
"""The seed's operators -> seed 000's (one value, several values: None when the operator
takes one value only); on a column, `isAny`/`isUndefined` are `is not null`/`is null`. A
seed-000 operator name is accepted as it is."""
NUMERIC_TYPES = ("number", "integer")
NEEDED = (
    "messageId",
    "type",
    "event",
    "timestamp",
    "userId",
    "anonymousId",
    "context",
    "properties",
)


class EventFilter(BaseModel):
    """One element of `filters`."""

    model_config = ConfigDict(extra="ignore")

    name: StrictStr = Field(min_length=1, max_length=MAX_TEXT)
    operator: StrictStr = "is"
    value: list[Annotated[StrictStr, Field(max_length=MAX_TEXT)]] = Field(
        default_factory=list, max_length=MAX_FILTER_VALUES
    )
    isEvent: StrictBool = False
    dataType: Literal["string", "number", "boolean", "integer", "timestamp"] = "string"


class SessionEventsRequest(BaseModel):
    """The body of the seed's request (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    startTimestamp: StrictInt = Field(ge=MIN_START_MS, le=MAX_EPOCH_MS)
    endTimestamp: StrictInt = Field(le=MAX_EPOCH_MS)
    limit: StrictInt = Field(ge=1, le=MAX_PAGE_SIZE)
    page: StrictInt = Field(ge=1)
    sortBy: StrictStr = "created_at"
    sortOrder: Literal["asc", "desc", "ASC", "DESC"] = "desc"
    filters: list[EventFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    columns: list[StrictStr] = Field(default_factory=list, max_length=len(TOP_LEVEL_COLUMNS))


BODY_DOC = (
    "`startTimestamp`, `endTimestamp` (epoch ms), `limit` (1-200), `page` (from 1), "
    "`sortBy`, `sortOrder` (asc/desc), `filters` [{name, operator, value[], isEvent, "
    "dataType}], `columns`: see docs/seed-apis.md."
)


EMPTY = {"data": {"total": 0, "events": []}}
_INTEGER = re.compile(r"-?[0-9]+")


def session_number(session_id: str) -> int | None:
    """The session id as the int64 `context.session.id` holds; None when it is not one."""
    if not _INTEGER.fullmatch(session_id):
        return None
    number = int(session_id)
    return number if -(2**63) <= number < 2**63 else None


def sort_column(name: str) -> str:
    """The event column of `sortBy` (400 naming it otherwise)."""
    column = SORT_ALIASES.get(name, name)
    if column not in ORDER_COLUMNS:
        valid = ", ".join((*SORT_ALIASES, *ORDER_COLUMNS))
        raise ApiError(400, "sortBy", f"unknown sort column {name!r}; valid: {valid}")
    return column


def extra_columns(names: list[str]) -> tuple[str, ...]:
    """The requested `columns`, event columns in schema order (400 naming a bad one)."""
    for i, name in enumerate(names):
        if name not in TOP_LEVEL_COLUMNS:
            valid = ", ".join(TOP_LEVEL_COLUMNS)
            raise ApiError(400, f"columns[{i}]", f"unknown column {name!r}; valid: {valid}")
    return tuple(c for c in TOP_LEVEL_COLUMNS if c in names)


def _typed_values(f: EventFilter, where: str) -> list[object]:
    """The filter's values for its dataType (400 naming the value that is not one)."""
    typed: list[object] = []
    for j, text in enumerate(f.value):
        try:
            if f.dataType == "integer":
                typed.append(int(text))
            elif f.dataType == "number":
                typed.append(float(text))
            elif f.dataType == "timestamp":
                typed.append(iso_ms(int(text)))
            elif f.dataType == "boolean" and text not in ("true", "false"):
                raise ValueError(text)
            else:
                typed.append(text)
        except (ValueError, OverflowError):
            raise ApiError(
                400, f"{where}.value[{j}]", f"{text!r} is not a {f.dataType} value"
            ) from None
    return typed


def condition_of(f: EventFilter, i: int) -> dict[str, Any]:
    """The seed-000 condition of the filter `filters[i]`."""
    where = f"filters[{i}]"
    target = f"properties.{f.name}" if f.isEvent else f.name
    json_path = resolve_property(target, f"{where}.name").kind == "json"
    values = _typed_values(f, where)
    if f.dataType == "boolean" and f.operator == "is" and len(values) == 1:
        return {"property": target, "operator": f"is {values[0]}", "values": []}
    one, many = OPERATORS.get(f.operator, (f.operator, None))
    if not json_path:  # a column is present or null
        one = {"exists": "is not null", "does not exist": "is null"}.get(one, one)
    operator = one
    if len(values) > 1:
        if many is None:
            raise ApiError(
                400, f"{where}.value", f"operator {f.operator!r} takes one value, got {len(values)}"
            )
        operator = many
    return {"property": target, "operator": operator, "values": values}


_CONDITION = re.compile(r"^filters?\.conditions\[(\d+)\]")


def renamed_error(exc: FilterError, fixed: int) -> ApiError:
    """A filter compiler error about condition `fixed + i` as one about `filters[i]`."""
    parameter = exc.parameter
    found = _CONDITION.match(parameter)
    if found and int(found.group(1)) >= fixed:
        rest = parameter[found.end() :].replace(".values", ".value").replace(".property", ".name")
        parameter = f"filters[{int(found.group(1)) - fixed}]{rest}"
    return ApiError(400, parameter, exc.reason)


def filter_document(session: int, body: SessionEventsRequest) -> tuple[dict[str, Any], int]:
    """The seed-000 filter of the request, and how many of its conditions come first (the
    session and the time window, both ends inclusive)."""
    fixed = [
        {"property": "context.session.id", "operator": "is", "values": [str(session)]},
        {
            "property": "timestamp",
            "operator": "is between",
            "values": [iso_ms(body.startTimestamp), iso_ms(body.endTimestamp)],
        },
    ]
    conditions = fixed + [condition_of(f, i) for i, f in enumerate(body.filters)]
    return {"logical": "and", "conditions": conditions}, len(fixed)


def event_name(kind: str | None, event: str | None) -> str | None:
    """`$event_name`: a track event's name, the seed's `$...` name of the other types."""
    return event if kind == "track" else EVENT_NAMES.get(kind or "", event)


def session_events(rows: pa.Table, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """The seed's event objects of `rows`, with the requested `columns` (as GET /v1/events
    shows them) after the seed's fields."""
    events = []
    for row in rows.to_pylist():
        context = row["context"] or {}
        session = (context.get("session") or {}).get("id")
        properties = row["properties"]
        event: dict[str, Any] = {
            "event_id": row["messageId"],
            "$event_name": event_name(row["type"], row["event"]),
            "created_at": epoch_ms(row["timestamp"]),
            "distinct_id": row["userId"] or row["anonymousId"],
            "session_id": None if session is None else str(session),
            "properties": None if properties is None else orjson.loads(properties),
        }
        shown = event_from_row({c: row[c] for c in columns})
        event.update({c: shown.get(c) for c in columns})
        events.append(event)
    return events


def register(
    app: FastAPI,
    reader: EventReader,
    authenticator: Authenticator,
    catalog: WorkspaceSource | None,
) -> None:
    """Add seed 001's route to `app`."""

    def answer(project: str, session_id: str, raw: bytes, key: str | None) -> Response:
        principal = authenticator.authorize(key, READ_SCOPE)
        if not session_id or len(session_id) > MAX_SESSION_ID:
            raise ApiError(400, "sessionId", f"must be 1 to {MAX_SESSION_ID} characters")
        body = parse_body(SessionEventsRequest, raw)
        if body.endTimestamp <= body.startTimestamp:
            raise ApiError(400, "endTimestamp", "must be greater than startTimestamp")
        first = (body.page - 1) * body.limit
        if first > MAX_FIRST:
            raise ApiError(400, "page", f"page * limit must be at most {MAX_FIRST}")
        order = sort_column(body.sortBy)
        columns = extra_columns(body.columns)
        connections = project_scope(catalog, principal, project)
        session = session_number(session_id)
        if session is None:  # no session has that id
            return Response(orjson.dumps(EMPTY), media_type="application/json")
        document, fixed = filter_document(session, body)
        try:
            predicate = compile_filter(document, "filters", dialect=reader.dialect)
        except FilterError as exc:
            raise renamed_error(exc, fixed) from None
        query = EventQuery(
            connections=connections,
            columns=tuple(dict.fromkeys((*NEEDED, *columns))),
            predicate=predicate,
            order=order,
            ascending=body.sortOrder.lower() == "asc",
            first=first,
            limit=body.limit,
        )
        total = reader.count_events(query)
        events = session_events(reader.list_events(query), columns) if total > first else []
        payload = {"data": {"total": total, "events": events}}
        return Response(orjson.dumps(payload), media_type="application/json")

    @app.post(
        "/public/{projectKey}/sessions/{sessionId:path}/events",
        summary="Events of one session (seed 001)",
        description="The events of session `sessionId` in the project's workspace, in a time "
        "window (epoch ms, both ends inclusive), filtered, sorted and paged as seed 001 "
        "says. Send `Authorization: Bearer <key>` of the project's workspace. "
        + scope_note("read")
        + " The JSON body: "
        + BODY_DOC,
        tags=["seed 001"],
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {}}}},
    )
    async def events_of_session(
        request: Request,
        projectKey: Annotated[str, Path(description="The workspace's project key.")],
        sessionId: Annotated[str, Path(description="The session id (1 to 256 characters).")],
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        raw = await read_body(
            request, MAX_BODY_BYTES
        )  # checked here, so that errors name `filters[0].name`
        return await run_in_threadpool(answer, projectKey, sessionId, raw, bearer(authorization))
