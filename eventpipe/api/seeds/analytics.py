"""Seed 003 (Fluid Topics analytics): `POST /analytics/api/v1/events` (a date-range search
with totals) and `POST /analytics/api/v1/events/count` (the count service).

A thin adapter over the read API's core: the request becomes a seed-000 filter document
(plus `or` groups, compiled by `api.filters.compile_filters`) and an `EventQuery` on the
key's workspace, answered by the reader's `list_events` and `count_events` (lake or
BigQuery). The mapping of every field: docs/seed-003.md.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

import datetime as dt
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
import pyarrow as pa
from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from eventpipe.api.auth import Authenticator, scope_note
from eventpipe.api.errors import ApiError
from eventpipe.api.filters import compile_filters
from eventpipe.api.limits import ServerBusy
from eventpipe.api.reader import EventReader
from eventpipe.schemas.principal import READ_SCOPE, Principal
from eventpipe.serving.event_query import EventQuery

SEARCH_PATH = "/analytics/api/v1/events"
COUNT_PATH = "/analytics/api/v1/events/count"
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
ECHO_FORMAT = "%Y-%m-%dT%H:%M:%S"
MAX_PER_PAGE = 1000
MAX_PAGE = 1_000_000
MAX_NAMES = 1000
MAX_USER_VALUES = 50
MAX_GROUPED_COUNTS = 1000
GROUPED_SECONDS = 30.0
"""A grouped count that has run this long stops (503): its groups are counted one by one."""
NON_TRACK_TYPES = ("page", "screen", "identify", "group", "alias")
ASCENDING = {"latestFirst": False, "LatestFirst": False, "oldestFirst": True, "OldestFirst": True}
USER_KEYS = {"realm": "realm", "group": "groups", "role": "roles"}
"""filters.user.<key> -> the key of `properties.user` it matches (and returns in `user`)."""
COLUMNS = ("messageId", "type", "event", "timestamp", "context", "properties", "userId")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
CLOCK_STATE = "analytics_clock"
"""`app.state.analytics_clock`: the API's clock (aware UTC now), injectable for tests."""

Name = Annotated[StrictStr, Field(min_length=1, max_length=256)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserFilter(_Body):
    id: Annotated[list[Name], Field(max_length=MAX_NAMES)] | None = None
    realm: Annotated[list[Name], Field(max_length=MAX_USER_VALUES)] | None = None
    group: Annotated[list[Name], Field(max_length=MAX_USER_VALUES)] | None = None
    role: Annotated[list[Name], Field(max_length=MAX_USER_VALUES)] | None = None


class Filters(_Body):
    name: Annotated[list[Name], Field(max_length=MAX_NAMES)] | None = None
    user: UserFilter | None = None


class Paging(_Body):
    page: Annotated[StrictInt, Field(ge=1, le=MAX_PAGE)]
    perPage: Annotated[StrictInt, Field(ge=1, le=MAX_PER_PAGE)]


class SearchBody(_Body):
    startDate: StrictStr
    endDate: StrictStr | None = None
    filters: Filters | None = None
    paging: Paging | None = None
    sortOrder: Literal["latestFirst", "oldestFirst", "LatestFirst", "OldestFirst"] = "latestFirst"


class CountBody(SearchBody):
    groupBy: Annotated[list[Literal["day", "name"]], Field(max_length=2)] | None = None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_date(text: str, parameter: str) -> dt.datetime:
    """A date of the seed's three formats, as an aware UTC datetime (400 naming it)."""
    for form in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, form).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    raise ApiError(
        400,
        parameter,
        f"{text!r} is not a date of the form YYYY-mm-dd, YYYY-mm-ddTHH:MM or YYYY-mm-ddTHH:MM:SS",
    )


def _year_before(moment: dt.datetime) -> dt.datetime:
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year - 1, day=28)


def date_range(body: SearchBody, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[startDate, endDate): start within the past year, end later (default: now, to the
    second)."""
    start = parse_date(body.startDate, "startDate")
    if not _year_before(now) <= start <= now:
        raise ApiError(
            400, "startDate", f"must be in the past year (from {_year_before(now):{ECHO_FORMAT}})"
        )
    if body.endDate is None:
        end = now.replace(microsecond=0)
    else:
        end = parse_date(body.endDate, "endDate")
    if end <= start:
        raise ApiError(400, "endDate", "must be later than startDate")
    return start, end


def _condition(prop: str, operator: str, values: list[str]) -> dict[str, Any]:
    return {"property": prop, "operator": operator, "values": values}


def name_group(names: list[str]) -> dict[str, Any]:
    """An event's name is its `event` (track) or its type (the other types)."""
    conditions = [_condition("event", "is one of", names)]
    types = [n for n in dict.fromkeys(names) if n in NON_TRACK_TYPES]
    if types:
        conditions.append(_condition("type", "is one of", types))
    return {"logical": "or", "conditions": conditions}


def user_group(key: str, values: list[str]) -> dict[str, Any]:
    """`properties.user.<key>` is one of `values`, or an array that includes one (kept
    beside the main filter: the serving index does not look up array membership)."""
    condition = _condition(f"properties.user.{key}", "includes one of", values)
    return {"logical": "and", "conditions": [condition]}


def core_filter(
    body: SearchBody, start: dt.datetime, end: dt.datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The seed-000 filter document of the request (every condition required) and the
    `or` groups that must hold beside it."""
    conditions = [
        _condition("timestamp", "is on or after", [start.isoformat()]),
        _condition("timestamp", "is before", [end.isoformat()]),
    ]
    groups = []
    filters = body.filters or Filters()
    if filters.name:
        groups.append(name_group(filters.name))
    user = filters.user or UserFilter()
    if user.id:
        conditions.append(_condition("userId", "is one of", user.id))
    for key, stored in USER_KEYS.items():
        values = getattr(user, key)
        if values:
            groups.append(user_group(stored, values))
    return {"logical": "and", "conditions": conditions}, groups


def count_query(
    reader: EventReader,
    body: SearchBody,
    start: dt.datetime,
    end: dt.datetime,
    principal: Principal,
) -> EventQuery:
    """The core query of the request's range and filters, on the key's workspace."""
    document, groups = core_filter(body, start, end)
    predicate = compile_filters(document, groups, dialect=reader.dialect)
    return EventQuery(connections=principal.connections, predicate=predicate)


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def epoch_ms(moment: dt.datetime | None) -> int | None:
    """Milliseconds since the epoch, exactly (floored; no float rounding)."""
    return None if moment is None else (moment - EPOCH) // dt.timedelta(milliseconds=1)


def result_of(row: dict[str, Any]) -> dict[str, Any]:
    """The seed's result object of one lake row (absent data is null)."""
    context = row["context"] or {}
    app = context.get("app") or {}
    session = context.get("session") or {}
    properties = _json(row["properties"])
    fields = properties if isinstance(properties, dict) else {}
    user = fields.get("user") if isinstance(fields.get("user"), dict) else {}
    session_id = session.get("id")
    return {
        "appName": app.get("name"),
        "appVersion": app.get("version"),
        "contentLocale": _text(fields.get("contentLocale")),
        "datetime": epoch_ms(row["timestamp"]),
        "id": row["messageId"],
        "name": row["event"] if row["type"] == "track" else row["type"],
        "offline": _flag(fields.get("offline")),
        "parameters": properties,
        "sessionId": None if session_id is None else str(session_id),
        "tenantId": _text(fields.get("tenantId")),
        "uiLocale": context.get("locale"),
        "user": {
            "id": row["userId"],
            "realm": user.get("realm"),
            "groups": user.get("groups"),
            "roles": user.get("roles"),
        },
        "userAgent": context.get("userAgent"),
        "userIp": context.get("ip"),
    }


def _results(table: pa.Table) -> list[dict[str, Any]]:
    return [result_of(row) for row in table.to_pylist()]


def _json_response(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"description": "A missing or invalid parameter: `error.parameter` names it."},
    401: {"description": "The key is missing or invalid."},
    403: {"description": "The key lacks the `read` scope."},
    503: {"description": "A server limit stopped the request; `Retry-After` is set."},
}


def register(
    app: FastAPI,
    reader: EventReader,
    authenticator: Authenticator,
    clock: Callable[[], dt.datetime] = utc_now,
) -> None:
    """Add the seed-003 routes to `app`, answering from `reader` for keys of
    `authenticator` (read scope); `clock` becomes `app.state.analytics_clock`."""
    setattr(app.state, CLOCK_STATE, clock)
    principal_of = authenticator.require(READ_SCOPE)

    def prepare(
        request: Request, body: SearchBody, principal: Principal
    ) -> tuple[dt.datetime, dt.datetime, EventQuery]:
        start, end = date_range(body, getattr(request.app.state, CLOCK_STATE)())
        return start, end, count_query(reader, body, start, end, principal)

    @app.post(
        SEARCH_PATH,
        responses=_ERRORS,
        summary="Search events (seed 003)",
        description="Events of a date range, with paging and totals (Fluid Topics' "
        "analytics events). " + scope_note("read"),
    )
    def search_events(
        request: Request,
        body: SearchBody,
        principal: Annotated[Principal, Depends(principal_of)],
    ) -> Response:
        start, end, query = prepare(request, body, principal)
        paging = body.paging or Paging(page=1, perPage=MAX_PER_PAGE)
        first = (paging.page - 1) * paging.perPage
        total = reader.count_events(query)
        page = EventQuery(
            connections=query.connections,
            columns=COLUMNS,
            predicate=query.predicate,
            ascending=ASCENDING[body.sortOrder],
            first=first,
            limit=paging.perPage,
        )
        results = _results(reader.list_events(page)) if first < total else []
        return _json_response(
            {
                "startDate": f"{start:{ECHO_FORMAT}}",
                "endDate": f"{end:{ECHO_FORMAT}}",
                "paging": {
                    "page": paging.page,
                    "perPage": paging.perPage,
                    "totalCount": total,
                    "lastPage": first + paging.perPage >= total,
                },
                "results": results,
            }
        )

    @app.post(
        COUNT_PATH,
        responses=_ERRORS,
        summary="Count events (seed 003)",
        description="The number of events of a date range (same `startDate`, `endDate` "
        "and `filters` as the search), optionally grouped by `day` and/or `name` "
        "(`groupBy`). " + scope_note("read"),
    )
    def count_events(
        request: Request,
        body: CountBody,
        principal: Annotated[Principal, Depends(principal_of)],
    ) -> Response:
        start, end, query = prepare(request, body, principal)
        answer: dict[str, Any] = {
            "startDate": f"{start:{ECHO_FORMAT}}",
            "endDate": f"{end:{ECHO_FORMAT}}",
            "count": reader.count_events(query),
        }
        if body.groupBy:
            answer["groups"] = grouped_counts(reader, body, start, end, principal)
        return _json_response(answer)


def _days(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The UTC days of [start, end), cut to it."""
    days = []
    day = dt.datetime.combine(start.date(), dt.time(), dt.UTC)
    while day < end:
        following = day + dt.timedelta(days=1)
        days.append((max(day, start), min(following, end)))
        day = following
    return days


def grouped_counts(
    reader: EventReader,
    body: CountBody,
    start: dt.datetime,
    end: dt.datetime,
    principal: Principal,
) -> list[dict[str, Any]]:
    """The counts by `body.groupBy` (day: the UTC days of the range; name: each of
    `filters.name`, which it needs), one core count each, within GROUPED_SECONDS; groups
    of 0 are left out."""
    by = list(dict.fromkeys(body.groupBy or ()))
    names: list[str | None] = [None]
    if "name" in by:
        names = list(dict.fromkeys((body.filters and body.filters.name) or ()))
        if not names:
            raise ApiError(400, "groupBy", "grouping by name needs the names in filters.name")
    ranges = _days(start, end) if "day" in by else [(start, end)]
    if len(ranges) * len(names) > MAX_GROUPED_COUNTS:
        raise ApiError(
            400, "groupBy", f"at most {MAX_GROUPED_COUNTS} groups (days x names) per request"
        )
    groups = []
    deadline = time.monotonic() + GROUPED_SECONDS
    for low, high in ranges:
        for name in names:
            if time.monotonic() > deadline:
                raise ServerBusy(
                    f"the grouped count ran longer than {GROUPED_SECONDS:g} s: narrow the "
                    "range or group by less"
                )
            filters = (body.filters or Filters()).model_copy(
                update={"name": [name]} if name is not None else {}
            )
            one = body.model_copy(update={"filters": filters})
            n = reader.count_events(count_query(reader, one, low, high, principal))
            if n:
                group: dict[str, Any] = {}
                if "day" in by:
                    group["day"] = low.date().isoformat()
                if name is not None:
                    group["name"] = name
                groups.append({**group, "count": n})
    return groups
