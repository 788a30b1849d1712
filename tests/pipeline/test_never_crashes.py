"""Property: random and mutated records never crash the stages and always reconcile."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_support import Stages, make_event

STAGES = Stages(default_connection=1)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "type",
    "event",
    "anonymousId",
    "userId",
    "messageId",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "receivedAt",
    "properties",
    "traits",
    "context",
    "groupId",
    "previousId",
    "category",
    "name",
    "connectionId",
    "batch",
    "body",
    "ip",
]
CONTEXT_PATHS = [
    ("screen", "width"),
    ("screen", "density"),
    ("session", "id"),
    ("page", "url"),
    ("ip",),
    ("sessionId",),
]


@st.composite
def mutated_events(draw) -> dict:
    event = make_event(context={"page": {"url": "https://x.example"}, "screen": {"width": 10}})
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()):
            event[key] = draw(json_values)
        else:
            event.pop(key, None)
    if draw(st.booleans()):
        path = draw(st.sampled_from(CONTEXT_PATHS))
        ctx = event.setdefault("context", {}) if isinstance(event.get("context"), dict) else {}
        node = ctx
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part), dict) else {}
        node[path[-1]] = draw(json_values)
    return event


@st.composite
def records(draw) -> str:
    kind = draw(st.sampled_from(["event", "batch", "array", "envelope", "value", "text"]))
    if kind == "value":
        return json.dumps(draw(json_values))
    if kind == "text":
        return draw(st.text(max_size=40))
    events = draw(st.lists(mutated_events() | json_values, min_size=0, max_size=4))
    body: object = {
        "event": events[0] if events else {},
        "batch": {"batch": events},
        "array": events,
    }.get(kind, {"batch": events})
    if kind == "envelope":
        body = {
            "receivedAt": draw(st.sampled_from(["2026-01-01T00:00:00Z", "x", None])),
            "ip": draw(st.sampled_from(["1.2.3.4", "::1", "no", None])),
            "body": body,
        }
    text = json.dumps(body)
    if draw(st.integers(0, 9)) == 0:  # truncate some records
        text = text[: draw(st.integers(0, len(text)))]
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=12))
def test_random_records_reconcile(texts):
    texts = [t for t in texts if t.strip() and "\n" not in t] or ["{}"]
    events, failed, read = STAGES.run_tables(texts)
    assert read == events.num_rows + failed.num_rows
    # Every failure names a reason and says why.
    for row in failed.to_pylist():
        assert row["reason"] and row["message"] and row["raw"] is not None
