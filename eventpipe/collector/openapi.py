"""The collector's routes in the OpenAPI document of `eventpipe serve` (they are lean
Starlette routes, which FastAPI does not describe by itself)."""

from __future__ import annotations

from typing import Any

_ERRORS = {
    "400": "Malformed request: `error.parameter` names the part at fault, `error.message` why.",
    "401": "Missing, unknown or revoked key.",
    "403": "A key that may not ingest here (read/admin key, API key on a write-key route, "
    "events of another connection).",
    "404": "Unknown event type in the path, or a connectionId outside the key's workspace.",
    "413": "Body over --max-body-bytes, or more events than --max-events.",
    "503": "The landing log could not be written: nothing was kept; retry.",
}
_ACCEPTED = {
    "description": 'Stored durably. `{"status": "accepted", "invalid": [{"index", "field", '
    '"reason", "message"}]}`: invalid events are kept and reach the failed table at import.'
}


def _post(summary: str, description: str, body: dict[str, Any]) -> dict[str, Any]:
    responses = {"200": _ACCEPTED, **{code: {"description": d} for code, d in _ERRORS.items()}}
    return {
        "post": {
            "tags": ["ingestion"],
            "summary": summary,
            "description": description
            + " CORS: preflight OPTIONS answered. See docs/collector.md.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": responses,
        }
    }


COLLECTOR_PATHS: dict[str, dict[str, Any]] = {
    "/v1/events": _post(
        "Ingest events",
        "A batch document `{batch, context, sentAt, connectionId, writeKey}`; with an event "
        "write key also a bare array of events or one event carrying its `type`. An API key "
        "needs the `write` scope and a `connectionId` of its workspace.",
        {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
    ),
    "/v1/events/{type}": {
        **_post(
            "Ingest event",
            "One event of the path's type (alias, identify, group, page, screen, track); "
            "event write key only.",
            {"type": "object"},
        ),
        "parameters": [
            {"name": "type", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
    },
    "/v1/track": _post(
        "Track (seed 004)",
        "Any JSON object with a non-empty string `event_name`; stored as a `track` event "
        "(other fields in `properties`). Event write key only.",
        {"type": "object", "required": ["event_name"]},
    ),
}


def document_collector(app: Any) -> None:
    """Add the collector's paths to a FastAPI app's OpenAPI document (no-op elsewhere)."""
    original = getattr(app, "openapi", None)
    if original is None:
        return

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            for path, item in COLLECTOR_PATHS.items():
                schema.setdefault("paths", {}).setdefault(path, {}).update(item)
        return app.openapi_schema

    app.openapi = openapi
