"""Deliberately invalid input, one problem at a time, with the importer's reason codes.

Every variant breaks exactly one rule of seed 000 (or of the raw-record format),
so the reason the importer must report is known in advance and counted exactly.

Record-level reasons reject a whole line (one read unit); event-level reasons
reject one event of an otherwise valid record (one read unit).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson

from eventpipe.sample.events import Event, EventFactory, Visitor, uuid4

# The reason codes are the importer's (one list); which input breaks which rule, and
# how many times, is this module's own independent account.
from eventpipe.schemas.failures import (
    EMPTY_BATCH,
    INVALID_BATCH,
    INVALID_ENVELOPE,
    INVALID_EVENT,
    INVALID_JSON,
    INVALID_RECORD,
    INVALID_TYPE,
    INVALID_VALUE,
    MISSING_PROPERTY,
    PROPERTY_NOT_PERMITTED,
)

RECORD_REASONS = (INVALID_JSON, INVALID_RECORD, INVALID_ENVELOPE, INVALID_BATCH, EMPTY_BATCH)
EVENT_REASONS = (INVALID_EVENT, MISSING_PROPERTY, PROPERTY_NOT_PERMITTED, INVALID_TYPE,
                 INVALID_VALUE)  # fmt: skip
REASONS = RECORD_REASONS + EVENT_REASONS

# Which record-level reasons each kind of line can carry.
ENVELOPE_LINE_REASONS = RECORD_REASONS
BATCH_LINE_REASONS = (INVALID_JSON, INVALID_RECORD, INVALID_BATCH, EMPTY_BATCH)
EVENT_LINE_REASONS = (INVALID_JSON, INVALID_RECORD)

# --- event-level -----------------------------------------------------------------------------

NON_OBJECTS: tuple[Any, ...] = (42, "track", None, [], True, 3.5)


def _ctx(ev: Event) -> dict[str, Any]:
    ctx = dict(ev.get("context") or {})
    ev["context"] = ctx
    return ctx


def _ensure_user(f: EventFactory, v: Visitor, ev: Event) -> None:
    if not ev.get("userId"):
        ev["userId"] = v.user_id or f"usr_{f.rng.getrandbits(60):015x}"


def _ensure_anonymous(f: EventFactory, v: Visitor, ev: Event) -> None:
    if not ev.get("anonymousId"):
        ev["anonymousId"] = v.anonymous_id or uuid4(f.rng)


def _minimal(ev: Event) -> None:
    """Drop everything type-specific, so a missing or unknown type is the only problem."""
    for key in ("name", "category", "properties", "event", "traits", "groupId", "previousId"):
        ev.pop(key, None)


def _no_identity(f: EventFactory, v: Visitor, ev: Event) -> None:
    ev.pop("anonymousId", None)
    ev.pop("userId", None)


def _session_text(f: EventFactory, v: Visitor, ev: Event) -> None:
    ctx = _ctx(ev)
    ctx.pop("sessionId", None)
    ctx.pop("sessionStart", None)
    ctx["session"] = {"id": f"s_{f.rng.getrandbits(40):010x}", "start": False}


def _page_url_number(f: EventFactory, v: Visitor, ev: Event) -> None:
    ctx = _ctx(ev)
    ctx["page"] = {**ctx["page"], "url": f.rng.randint(1, 10**9)}


def _screen(**fields: Any) -> Callable[[EventFactory, Visitor, Event], None]:
    def apply(f: EventFactory, v: Visitor, ev: Event) -> None:
        _ctx(ev)["screen"] = {"width": 1280, "height": 800, "density": 2, **fields}

    return apply


def _set(key: str, value: Any) -> Callable[[EventFactory, Visitor, Event], None]:
    def apply(f: EventFactory, v: Visitor, ev: Event) -> None:
        ev[key] = value

    return apply


def _timestamp(value: str) -> Callable[[EventFactory, Visitor, Event], None]:
    def apply(f: EventFactory, v: Visitor, ev: Event) -> None:
        ev.pop("originalTimestamp", None)
        ev["timestamp"] = value

    return apply


def _ip(value: str) -> Callable[[EventFactory, Visitor, Event], None]:
    def apply(f: EventFactory, v: Visitor, ev: Event) -> None:
        _ctx(ev)["ip"] = value

    return apply


def _drop(key: str) -> Callable[[EventFactory, Visitor, Event], None]:
    def apply(f: EventFactory, v: Visitor, ev: Event) -> None:
        ev.pop(key, None)

    return apply


def _screen_string(f: EventFactory, v: Visitor, ev: Event) -> None:
    _ctx(ev)["screen"] = "1920x1080"


def _unknown_type(f: EventFactory, v: Visitor, ev: Event) -> None:
    _minimal(ev)
    ev["type"] = "view"


def _no_type(f: EventFactory, v: Visitor, ev: Event) -> None:
    _minimal(ev)
    del ev["type"]


def _original_without_timestamp(f: EventFactory, v: Visitor, ev: Event) -> None:
    ev["originalTimestamp"] = ev.pop("timestamp", None) or "2026-10-15T08:30:00.000Z"


def _anonymous_number(f: EventFactory, v: Visitor, ev: Event) -> None:
    _ensure_user(f, v, ev)
    ev["anonymousId"] = f.rng.randint(1000, 10**12)


def _user_empty(f: EventFactory, v: Visitor, ev: Event) -> None:
    _ensure_anonymous(f, v, ev)
    ev["userId"] = ""


def _anonymous_empty(f: EventFactory, v: Visitor, ev: Event) -> None:
    _ensure_user(f, v, ev)
    ev["anonymousId"] = ""


def _identify_without_user(f: EventFactory, v: Visitor, ev: Event) -> None:
    _ensure_anonymous(f, v, ev)
    del ev["userId"]


# (reason, variant, event type to start from, how to break it)
EVENT_VARIANTS: tuple[tuple[str, str, str, Callable[[EventFactory, Visitor, Event], None]], ...] = (
    (MISSING_PROPERTY, "no_type", "page", _no_type),
    (MISSING_PROPERTY, "track_without_event", "track", _drop("event")),
    (MISSING_PROPERTY, "identify_without_userId", "identify", _identify_without_user),
    (MISSING_PROPERTY, "alias_without_userId", "alias", _identify_without_user),
    (MISSING_PROPERTY, "alias_without_previousId", "alias", _drop("previousId")),
    (MISSING_PROPERTY, "group_without_groupId", "group", _drop("groupId")),
    (MISSING_PROPERTY, "originalTimestamp_without_timestamp", "track",
     _original_without_timestamp),
    (MISSING_PROPERTY, "no_anonymousId_nor_userId", "page", _no_identity),
    (PROPERTY_NOT_PERMITTED, "event_on_page", "page", _set("event", "Page Viewed")),
    (PROPERTY_NOT_PERMITTED, "groupId_on_track", "track", _set("groupId", "acct_1007")),
    (PROPERTY_NOT_PERMITTED, "previousId_on_identify", "identify",
     _set("previousId", "3e93e10e-5ca0-4a8c-bef6-cf9197b37729")),
    (PROPERTY_NOT_PERMITTED, "category_on_track", "track", _set("category", "Checkout")),
    (PROPERTY_NOT_PERMITTED, "name_on_track", "track", _set("name", "Checkout")),
    (PROPERTY_NOT_PERMITTED, "properties_on_identify", "identify",
     _set("properties", {"plan": "pro"})),
    (PROPERTY_NOT_PERMITTED, "traits_on_track", "track", _set("traits", {"plan": "pro"})),
    (INVALID_TYPE, "anonymousId_number", "track", _anonymous_number),
    (INVALID_TYPE, "page_url_number", "page", _page_url_number),
    (INVALID_TYPE, "session_id_string", "track", _session_text),
    (INVALID_TYPE, "properties_array", "track", _set("properties", ["sku-1", 2, {"a": 1}])),
    (INVALID_TYPE, "screen_string", "screen", _screen_string),
    (INVALID_TYPE, "traits_string", "identify", _set("traits", "premium")),
    (INVALID_VALUE, "type_view", "page", _unknown_type),
    (INVALID_VALUE, "timestamp_text", "track", _timestamp("yesterday")),
    (INVALID_VALUE, "timestamp_year_0", "track", _timestamp("0000-10-12T10:00:00.000Z")),
    (INVALID_VALUE, "timestamp_year_10000", "track", _timestamp("10000-10-12T10:00:00.000Z")),
    (INVALID_VALUE, "screen_width_0", "track", _screen(width=0)),
    (INVALID_VALUE, "screen_width_40000", "track", _screen(width=40000)),
    (INVALID_VALUE, "density_negative", "track", _screen(density=-1)),
    (INVALID_VALUE, "density_rounds_to_10", "track", _screen(density=9.995)),
    (INVALID_VALUE, "density_rounds_to_0", "track", _screen(density=0.004)),
    (INVALID_VALUE, "ip_malformed", "track", _ip("999.1.1.1")),
    (INVALID_VALUE, "ip_multicast", "track", _ip("224.0.0.1")),
    (INVALID_VALUE, "ip_multicast_v6", "track", _ip("ff02::1")),
    (INVALID_VALUE, "ip_multicast_mapped", "track", _ip("::ffff:224.0.0.1")),
    (INVALID_VALUE, "ip_zone_scoped", "track", _ip("fe80::1%eth0")),
    (INVALID_VALUE, "userId_empty", "track", _user_empty),
    (INVALID_VALUE, "anonymousId_empty", "track", _anonymous_empty),
)  # fmt: skip

VARIANTS_BY_REASON: dict[str, list[tuple[str, str, Callable[..., None]]]] = {}
for _reason, _name, _etype, _fn in EVENT_VARIANTS:
    VARIANTS_BY_REASON.setdefault(_reason, []).append((_name, _etype, _fn))


def break_event(f: EventFactory, v: Visitor, reason: str, *, request_ip: bool, single: bool,
                ) -> tuple[Any, str]:  # fmt: skip
    """An event of `v` with exactly one problem of `reason`, and the variant's name.

    `single`: the event stands alone (export/ndjson), so it carries its own
    connectionId, sentAt, receivedAt and the whole context.
    """
    rng = f.rng
    if reason == INVALID_EVENT:
        f.next_event(v, request_ip=request_ip)  # the slot still costs the visitor time
        value = rng.choice(NON_OBJECTS)
        return value, f"non_object_{type(value).__name__}"
    name, etype, apply = rng.choice(VARIANTS_BY_REASON[reason])
    ev = f.event_of_type(v, etype, request_ip=request_ip, commit=False)
    if single:
        f.stamp_single(v, ev)
    apply(f, v, ev)
    return ev, name


# --- record-level ----------------------------------------------------------------------------

_GARBAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
    b"{'type': 'track', 'event': 'Order Completed', 'userId': '720572415'}",
    b'{"type": "track", "event": "Signed Up", "userId": "1",}',
    b'{"batch": [{"type": "page", "anonymousId": "x"}',
    b"undefined",
)
_NOT_OBJECTS = (b"42", b'"batch"', b"null", b"true", b"3.14", b"-1")


def truncated(line: bytes, rng: random.Random) -> bytes:
    """A prefix of a JSON object line (cut on a character boundary): never valid JSON."""
    text = line.rstrip(b"\n").decode()
    return text[: rng.randint(1, len(text) - 1)].encode()


def bad_json(rng: random.Random, valid_line: bytes) -> tuple[bytes, str]:
    """A line that is not JSON: a truncated write or something else entirely."""
    if rng.random() < 0.6:
        return truncated(valid_line, rng), "truncated"
    i = rng.randrange(len(_GARBAGE))
    return _GARBAGE[i], ("html", "python_repr", "trailing_comma", "unclosed", "undefined")[i]


def bad_record(rng: random.Random) -> tuple[bytes, str]:
    """Valid JSON that is neither an object nor an array."""
    value = rng.choice(_NOT_OBJECTS)
    return value, "json_" + {b"null": "null", b"true": "bool", b'"batch"': "string"}.get(
        value, "number"
    )


def break_envelope(rng: random.Random, envelope: dict[str, Any]) -> str:
    """Make the envelope's receivedAt or ip invalid (the body stays valid)."""
    variant = rng.choice(("receivedAt_text", "receivedAt_number", "ip_malformed", "ip_hostname"))
    if variant == "receivedAt_text":
        envelope["receivedAt"] = "last tuesday"
    elif variant == "receivedAt_number":
        envelope["receivedAt"] = 1761955200
    elif variant == "ip_malformed":
        envelope["ip"] = "999.300.1.1"
    else:
        envelope["ip"] = "localhost"
    return variant


def break_batch(rng: random.Random, document: dict[str, Any]) -> str:
    """Make one top-level field of a batch document invalid (the events stay valid)."""
    variant = rng.choice(("batch_object", "batch_string", "sentAt_text", "context_string",
                          "context_array"))  # fmt: skip
    if variant == "batch_object":
        document["batch"] = {"events": document["batch"]}
    elif variant == "batch_string":
        document["batch"] = orjson.dumps(document["batch"]).decode()
    elif variant == "sentAt_text":
        document["sentAt"] = "just now"
    elif variant == "context_string":
        document["context"] = "web"
    else:
        document["context"] = [document.get("context") or {}]
    return variant
