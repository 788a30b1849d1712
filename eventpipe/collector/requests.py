"""What one ingestion request says: its limits, its form, and the landing envelope it becomes.

Pure functions on the request's bytes and its parsed JSON; the event rules themselves are
the import's (`collector.batcher` runs them). A request the collector refuses raises
`ApiError` (status, the parameter at fault, a message naming it; the read API's error,
answered in the same JSON shape).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from eventpipe.api.errors import ApiError
from eventpipe.schemas import EVENT_TYPES

TRACK_FIELDS = ("anonymousId", "userId", "messageId", "context", "sentAt", "timestamp")
"""`/v1/track` body fields kept as the event's own; every other field goes to `properties`."""


@dataclass(frozen=True)
class Limits:
    """What one request may hold (each a `serve` flag)."""

    max_body_bytes: int = 4 * 2**20
    max_events: int = 2000
    max_depth: int = 64
    max_pending_bytes: int = 256 * 2**20  # bodies being read or waiting to land, all together


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of objects and arrays in the JSON text `body` (C-speed scans)."""
    codes = np.frombuffer(_STRINGS.sub(b"", body), dtype=np.uint8)
    steps = (np.isin(codes, (ord("["), ord("{"))).astype(np.int32)) - np.isin(
        codes, (ord("]"), ord("}"))
    ).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def parse_body(body: bytes, limits: Limits) -> Any:
    """The request's JSON, after the size limit and a first depth test (413/400 naming the
    limit). A body nested more than 2 levels deeper than the limit is refused unread (no
    event in it can be within the limit); `check_event_depth` tells the rest exactly."""
    if len(body) > limits.max_body_bytes:
        raise body_too_large(limits)
    if not body.strip():
        raise ApiError(400, "body", "the request body is empty; send a JSON document")
    if body.count(b"[") + body.count(b"{") > limits.max_depth + 2:
        depth = nesting_depth(body)
        if depth > limits.max_depth + 2:
            what = f"the request nests {depth} levels deep: an event nests at least {depth - 2}"
            raise _too_deep(what, limits)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body", f"the request body is not valid JSON: {exc}") from None


def _too_deep(what: str, limits: Limits) -> ApiError:
    return ApiError(
        400,
        "body",
        f"{what}; the limit is {limits.max_depth} levels per event, the event object being "
        "level 1 as the import counts (serve --max-depth)",
    )


def check_event_depth(body: bytes, landed: Any, limits: Limits) -> None:
    """400 when an event of the request nests deeper than the limit, counted per event as
    the import counts (the event object is level 1; a batch document's other fields, such as
    its context, from the document, as they are merged into each event). `landed` is the
    document as it lands (a batch, an array of events or one event)."""
    if body.count(b"[") + body.count(b"{") < limits.max_depth:
        return
    if nesting_depth(body) < limits.max_depth:  # `/v1/track` nests the body one level deeper
        return
    if isinstance(landed, dict) and isinstance(landed.get("batch"), list):
        rest = {k: v for k, v in landed.items() if k != "batch"}
        parts = [("the batch document", rest)]
        parts += [(f"event {i} of the batch", e) for i, e in enumerate(landed["batch"])]
    elif isinstance(landed, list):
        parts = [(f"event {i} of the array", e) for i, e in enumerate(landed)]
    else:
        parts = [("the event", landed)]
    for what, part in parts:
        depth = _depth(part, limits.max_depth + 1)
        if depth > limits.max_depth:
            raise _too_deep(f"{what} nests {depth} levels deep", limits)


def _depth(value: Any, stop: int) -> int:
    """The nesting depth of a parsed JSON value (an object or array is 1), at most `stop`."""
    if not isinstance(value, dict | list) or stop <= 0:
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, stop - 1) for child in children), default=0)


def over_limit(parameter: str, excess: str, flag: str) -> ApiError:
    """The 413 of a request over a limit: what is too much, and the flag that sets it."""
    return ApiError(413, parameter, f"{excess} (serve {flag}); send fewer events per request")


def body_too_large(limits: Limits) -> ApiError:
    """The 413 of a body over the size limit."""
    excess = f"the request body is over the limit of {limits.max_body_bytes:,} bytes"
    return over_limit("body", excess, "--max-body-bytes")


def check_event_count(events: Any, limits: Limits) -> None:
    """413 when a batch or array holds more events than the limit."""
    if isinstance(events, list) and len(events) > limits.max_events:
        excess = f"the request holds {len(events):,} events; the limit is {limits.max_events:,}"
        raise over_limit("batch", excess, "--max-events")


def check_connections(events: Any, connection: int) -> None:
    """403 when an event names another connection than the request's (it would win)."""
    if not isinstance(events, list):
        return
    for index, event in enumerate(events):
        if isinstance(event, dict) and event.get("connectionId", connection) not in (
            None,
            connection,
        ):
            raise ApiError(
                403,
                f"batch[{index}].connectionId",
                f"event {index} names connection {event['connectionId']!r}; this request may "
                f"only send events of connection {connection}",
            )


def event_of_type(doc: Any, path_type: str) -> dict[str, Any]:
    """The body of `POST /v1/events/{type}` as an event carrying its type."""
    if path_type not in EVENT_TYPES:
        raise ApiError(
            404, "type", f"unknown event type {path_type!r}; one of: {', '.join(EVENT_TYPES)}"
        )
    if not isinstance(doc, dict):
        raise ApiError(400, "body", "the body must be one event object")
    given = doc.get("type")
    if given is not None and given != path_type:
        raise ApiError(
            400, "type", f"the body's type {given!r} differs from the path's {path_type!r}"
        )
    return {**doc, "type": path_type}


def anonymous_id(key_id: int, ip: str | None, user_agent: str | None) -> str:
    """`/v1/track`'s anonymousId when the body has no id: one per key, client address and
    user agent (a UUID-formatted MD5), so one client's events share it."""
    digest = hashlib.md5(f"{key_id}\x00{ip or ''}\x00{user_agent or ''}".encode()).digest()
    return str(uuid.UUID(bytes=digest))


def track_event(doc: Any, received_at: str, default_anonymous_id: str) -> dict[str, Any]:
    """Seed 004's free-form body as a `track` event (docs/collector.md has the mapping)."""
    if not isinstance(doc, dict):
        raise ApiError(400, "body", "the body must be a JSON object with event_name")
    name = doc.get("event_name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "event_name", "event_name is required and must be a non-empty string")
    event: dict[str, Any] = {"type": "track", "event": name}
    properties = {k: v for k, v in doc.items() if k not in TRACK_FIELDS and k != "event_name"}
    properties.pop("writeKey", None)
    event.update({k: doc[k] for k in TRACK_FIELDS if doc.get(k) is not None})
    event.setdefault("timestamp", received_at)
    if "userId" not in event and "anonymousId" not in event:
        event["anonymousId"] = default_anonymous_id
    event["properties"] = properties
    return event


def landed_body(body: bytes, doc: Any, rebuilt: Any | None) -> bytes:
    """The body as one JSONL-safe text: `rebuilt` when the collector changed the document,
    else the bytes as sent without their line breaks (JSON whitespace: the text between
    strings; a raw line break inside a string is not valid JSON, so parsing refused it)."""
    if rebuilt is not None:
        return orjson.dumps(rebuilt)
    if isinstance(doc, dict) and "writeKey" in doc:  # a secret is not an event's data
        return orjson.dumps({k: v for k, v in doc.items() if k != "writeKey"})
    return body.replace(b"\n", b" ").replace(b"\r", b" ")


def envelope_line(received_at: str, ip: str | None, connection: int, body: bytes) -> bytes:
    """One landing envelope (`{"receivedAt", "ip", "connectionId", "body"}`) as a JSONL line."""
    head = orjson.dumps({"receivedAt": received_at, "ip": ip, "connectionId": connection})
    return head[:-1] + b',"body":' + body + b"}\n"
