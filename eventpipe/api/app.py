"""The read API (FastAPI): GET /v1/events and GET /v1/events/schema of seed 000.

`create_app(lake, api_keys)` builds the application; `eventpipe serve` runs it on
uvicorn. OpenAPI documentation is served, without authentication, at /docs.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import Depends, FastAPI, Query, Response

from eventpipe.api.auth import BearerAuth
from eventpipe.api.errors import ApiError, install_error_handlers
from eventpipe.api.filters import FILTER_LANGUAGE, parse_filter
from eventpipe.api.limits import ServingLimits
from eventpipe.api.query import ORDER_COLUMNS, EventQuery, LakeReader
from eventpipe.api.reader import EventReader
from eventpipe.api.rows import events_from_table
from eventpipe.schemas import TOP_LEVEL_COLUMNS, schema_document

MAX_LIMIT = 1000
MAX_FIRST = 1_000_000_000
UVICORN_OPTIONS: dict[str, object] = {
    # A 64 KB filter takes up to ~3x that once URL-escaped; h11's default stops at 16 KB.
    "h11_max_incomplete_event_size": 256 * 1024,
}

OrderName = Literal[ORDER_COLUMNS]  # type: ignore[valid-type]

_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {
        "description": "Bad request: `error.parameter` names the parameter, "
        "`error.message` the reason."
    },
    401: {"description": "Missing or invalid API key."},
    503: {
        "description": "A server limit stopped the request (its statement timeout, memory "
        "limit, or no free query slot): `error.message` says which; `Retry-After` is set."
    },
}
_FILTER_DOC = (
    'URL-escaped JSON: `{"logical": "and"|"or", "conditions": [{"property": ..., '
    '"operator": ..., "values": [...]}]}`. At most 64 KB, 100 conditions, 1,000 values '
    "in one condition and 3,000 in all together (a 400 beyond). "
    "`property` is a column, a nested path (`context.browser.name`) or a path into a "
    "json column (`properties.plan`). Nulls and missing json keys match only `is null` "
    "and `does not exist`; every other operator, negative ones included, is false on them."
)


def parse_properties(values: list[str] | None) -> tuple[str, ...]:
    """The requested top-level columns (comma-separated, repeatable), in schema order."""
    if not values:
        return TOP_LEVEL_COLUMNS
    wanted: set[str] = set()
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name not in TOP_LEVEL_COLUMNS:
                raise ApiError(
                    400,
                    "properties",
                    f"unknown property {name!r}; valid: " + ", ".join(TOP_LEVEL_COLUMNS),
                )
            wanted.add(name)
    if not wanted:
        return TOP_LEVEL_COLUMNS
    return tuple(c for c in TOP_LEVEL_COLUMNS if c in wanted)


def create_app(
    lake: str | None,
    api_keys: list[str] | None,
    insecure_no_auth: bool = False,
    reader: EventReader | None = None,
    limits: ServingLimits | None = None,
) -> FastAPI:
    """The API over the lake folder `lake`, accepting `api_keys` as bearer tokens.

    Without any key it refuses (ValueError) unless `insecure_no_auth` is set. Another
    backend (e.g. `bigquery_backend.BigQueryReader`) is passed as `reader`: filters are
    rendered in its SQL dialect. `limits` bound the lake reader.
    """
    keys = [k for k in (api_keys or []) if k]
    if not keys and not insecure_no_auth:
        raise ValueError("no API key configured (use --insecure-no-auth to serve without one)")
    reader = reader or LakeReader(lake or ".", limits=limits)
    auth = BearerAuth(keys, enabled=not insecure_no_auth)
    app = FastAPI(
        title="eventpipe read API",
        version="1",
        description="Lists the events of the lake with seed 000's filter language, and "
        "returns the event schema. Send `Authorization: Bearer <key>`.\n\n"
        "## The filter language\n\n" + FILTER_LANGUAGE,
    )
    app.state.reader = reader
    install_error_handlers(app)

    @app.get(
        "/v1/events",
        dependencies=[Depends(auth)],
        responses=_ERROR_RESPONSES,
        summary="List events",
        response_description='`{"events": [...]}`, newest first by default',
    )
    def list_events(
        properties: Annotated[
            list[str] | None,
            Query(description="Comma-separated top-level properties to return (default all)."),
        ] = None,
        filter_text: Annotated[str | None, Query(alias="filter", description=_FILTER_DOC)] = None,
        order: Annotated[OrderName, Query(description="Sort property.")] = "timestamp",
        ascending: Annotated[bool, Query(description="Ascending instead of descending.")] = False,
        first: Annotated[int, Query(ge=0, le=MAX_FIRST, description="Events to skip.")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Events to return.")] = 100,
    ) -> Response:
        query = EventQuery(
            columns=parse_properties(properties),
            predicate=parse_filter(filter_text, dialect=reader.dialect),
            order=order,
            ascending=ascending,
            first=first,
            limit=limit,
        )
        events = events_from_table(reader.list_events(query))
        return Response(orjson.dumps({"events": events}), media_type="application/json")

    @app.get(
        "/v1/events/schema",
        dependencies=[Depends(auth)],
        responses=_ERROR_RESPONSES,
        summary="Get event schema",
    )
    def event_schema() -> dict:
        return schema_document()

    return app
