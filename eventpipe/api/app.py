"""The read API (FastAPI): GET /v1/events and GET /v1/events/schema of seed 000.

`create_app(lake, api_keys, catalog=...)` builds the application; `eventpipe serve` runs
it on uvicorn. OpenAPI documentation is served, without authentication, at /docs. Every
endpoint names the scope it needs (`Authenticator.require`); the authenticator is
`app.state.authenticator`, for routes added beside these.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at
# runtime, and the authentication dependency is a local of create_app.

from typing import Annotated, Literal

import orjson
from fastapi import Depends, FastAPI, Query, Response

from eventpipe.api.auth import Authenticator, PrincipalSource, scope_note
from eventpipe.api.errors import ApiError, install_error_handlers
from eventpipe.api.filters import FILTER_LANGUAGE, parse_filter
from eventpipe.api.limits import ServingLimits
from eventpipe.api.query import ORDER_COLUMNS, EventQuery, LakeReader
from eventpipe.api.reader import EventReader
from eventpipe.api.rows import events_from_table
from eventpipe.api.seeds import analytics, export, session_events
from eventpipe.schemas import TOP_LEVEL_COLUMNS, schema_document
from eventpipe.schemas.principal import READ_SCOPE, Principal

MAX_LIMIT = 1000
MAX_FIRST = 1_000_000_000
UVICORN_OPTIONS: dict[str, object] = {
    # h11, not httptools (installed for the collector-only server): httptools refuses the
    # long URLs a 64 KB filter makes (~3x once URL-escaped) with a bare 400 before the app
    # can answer; h11's default stops at 16 KB.
    "http": "h11",
    "h11_max_incomplete_event_size": 256 * 1024,
}

OrderName = Literal[ORDER_COLUMNS]  # type: ignore[valid-type]

_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {
        "description": "Bad request: `error.parameter` names the parameter, "
        "`error.message` the reason."
    },
    401: {"description": "Missing, invalid or revoked key."},
    403: {"description": "The key lacks the scope this endpoint needs."},
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


KEYS_DOC = (
    "## Keys\n\n"
    "A workspace's API key (`epk_...`) carries scopes: `read` (the query endpoints), "
    "`write` (ingestion), `admin`; an event write key (`epw_...`) may only ingest, for its "
    "connection. Every answer holds the key's workspace's events only, whatever the filter "
    "says. A missing, unknown or revoked key is a 401, a key without the endpoint's scope "
    "a 403. A legacy `--api-key` reads the whole lake."
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
    catalog: PrincipalSource | None = None,
) -> FastAPI:
    """The API over the lake folder `lake`, accepting the keys of `catalog` (the lake's
    workspace catalog) and the legacy `api_keys` (read scope, whole lake).

    Without a catalog or a key it refuses (ValueError) unless `insecure_no_auth`. Another
    backend (e.g. `bigquery_backend.BigQueryReader`) is passed as `reader`: filters are
    rendered in its SQL dialect. `limits` bound the lake reader.
    """
    auth = Authenticator(catalog, api_keys or [], insecure_no_auth=insecure_no_auth)
    reader = reader or LakeReader(lake or ".", limits=limits)
    app = FastAPI(
        title="eventpipe read API",
        version="1",
        description="Lists the events of the lake with seed 000's filter language, and "
        "returns the event schema. Send `Authorization: Bearer <key>`.\n\n" + KEYS_DOC + "\n\n"
        "## The filter language\n\n" + FILTER_LANGUAGE,
    )
    app.state.reader = reader
    app.state.authenticator = auth
    install_error_handlers(app)

    @app.get(
        "/v1/events",
        responses=_ERROR_RESPONSES,
        summary="List events",
        description="The events of the key's workspace. " + scope_note("read"),
        response_description='`{"events": [...]}`, newest first by default',
    )
    def list_events(
        principal: Annotated[Principal, Depends(auth.require(READ_SCOPE))],
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
            connections=principal.connections,
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
        dependencies=[Depends(auth.require(READ_SCOPE))],
        responses=_ERROR_RESPONSES,
        summary="Get event schema",
        description=scope_note("read"),
    )
    def event_schema() -> dict:
        return schema_document()

    analytics.register(app, reader, auth)  # seed 003
    session_events.register(app, reader, auth, catalog)  # type: ignore[arg-type]
    export.register(app, reader, auth, catalog, export.signer_for(catalog, lake))  # type: ignore[arg-type]
    return app
