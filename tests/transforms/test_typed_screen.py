"""The typed screen never clears an event the full checker rejects, and clears valid ones."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest

from eventpipe.core.duck import connect
from eventpipe.schemas import EVENT_TYPES
from eventpipe.schemas.records import PARSED_SCHEMA
from eventpipe.transforms.json_leaves import event_leaves
from eventpipe.transforms.typed_screen import PIECE_ROWS, _read, clear_events
from eventpipe.transforms.validate import EventValidator

from pipeline_support import RUN_START, make_event

# Values every leaf is set to in turn: wrong JSON types, and each kind's edges.
PROBES: list[Any] = [
    None, "", "x", 0, 1, -1, 1.5, True, False, {}, [], {"a": 1}, [1],
    32767, 32768, -32768, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 1e308,
    0.004, 0.005, 0.0049999, 0.006, 0.01, 9.99, 9.994, 9.995, 9.9949, 10, -0.0, -0.5,
    "2026-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
    "2026-01-01T24:00:00Z", "2026-01-01T23:59:60Z", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "1000-01-01T00:00:00+13:59", "8999-12-31T23:59:59-13:59",
    "2026-01-01t00:00:00z", "2026-01-01 00:00:00", "2026-01-01T00:00:00.1234567Z",
    "2026-01-01T00:00:00.123456+14:00", "2026-01-01T00:00:00+14:01", "2026-01-01",
    "2026-1-01T00:00:00Z", "2026-01-01T00:00:00", "1.2.3.4", "::ffff:1.2.3.4",
    "::ffff:224.0.0.1", "224.0.0.1", "fe80::1%eth0", "255.255.255.255", "300.1.1.1",
    *EVENT_TYPES, "view",
]  # fmt: skip


VALID = [
    make_event(),
    make_event(type="page", event=..., properties={}, category="Docs", name="Home"),
    make_event(type="screen", event=..., name="Home"),
    make_event(type="identify", event=..., properties=..., userId="u1", traits={"plan": "pro"}),
    make_event(type="group", event=..., properties=..., groupId="g1", traits={}),
    make_event(type="alias", event=..., properties=..., userId="u1", previousId="p1"),
    make_event(anonymousId=..., userId="u1"),
    make_event(category=None, groupId=None, messageId=None),
    make_event(integrations={"All": True}, version=2),
]
"""Valid events of every type (as in test_validate_rules)."""


def _with(event: dict, path: str, value: Any) -> dict:
    event = copy.deepcopy(event)
    node = event
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(node.get(part), dict | None) else {}
    node[last] = value
    return event


def _payloads() -> list[str]:
    events = list(VALID)
    for value in ("nan", "-Infinity", "1e400", "1e-400", "123456789012345678901234567890"):
        events.append(make_event(properties={"items": [{"price": value}]}))
    base = make_event(context={"page": {"url": "https://a.example/"}, "screen": {"width": 1}})
    for leaf in event_leaves():
        for value in PROBES:
            events.append(_with(base, leaf.path, value))
    for ty in EVENT_TYPES:  # the per-type rules, every property on every type
        for name in ("event", "groupId", "previousId", "category", "name", "userId"):
            events.append(make_event(type=ty, **{name: "v"}))
            events.append(make_event(type=ty, **{name: ...}))
        for name in ("properties", "traits"):
            events.append(make_event(type=ty, **{name: {"k": 1}}))
    texts = [orjson.dumps(e).decode() for e in events]
    texts += ['{"type": "track", "type": "page"}', '{"a": 1, "a": 2}', "[1]", '"x"']
    return texts


@pytest.fixture(scope="module")
def validator() -> EventValidator:
    return EventValidator("test-run", RUN_START).bind(connect())


def _events(texts: list[str]) -> pa.Table:
    n = len(texts)
    columns = {
        "source": pa.array(["t"] * n),
        "line": pa.array(range(n), pa.int64()),
        "index": pa.array([0] * n, pa.int32()),
        "payload": pa.array(texts),
    }
    return pa.table(
        [columns.get(f.name, pa.nulls(n, f.type)) for f in PARSED_SCHEMA], PARSED_SCHEMA
    )


def test_the_screen_clears_no_event_the_full_checker_rejects(validator):
    # The texts the reader takes one by one (a refused text would refuse its whole piece).
    texts = [t for t in _payloads() if _read(pa.array([t])) is not None]
    events = _events(texts)
    problem, _ = validator.problems(events)
    rejected = np.asarray(problem.is_valid(), dtype=bool)
    clear = validator.clear(events, pa.chunked_array([pa.array([False] * len(texts))]))
    wrongly = [texts[i] for i in np.flatnonzero(clear & rejected)]
    assert wrongly == []
    # ...and it does clear: the valid events of every type and most valid probes.
    assert clear[: len(VALID)].all()
    assert clear.sum() > 0.5 * (~rejected).sum()
    assert rejected.sum() > 300  # the probes that the reader takes do break rules


def test_one_refused_piece_leaves_the_others_cleared():
    good = orjson.dumps(make_event()).decode()
    texts = [good] * PIECE_ROWS + [good.replace('"track"', "5", 1)] + [good] * 3
    clear = clear_events(pa.array(texts), np.zeros(len(texts), dtype=bool))
    assert clear[:PIECE_ROWS].all() and not clear[PIECE_ROWS:].any()


def test_doubtful_rows_are_never_cleared():
    texts = [orjson.dumps(make_event()).decode()] * 3
    clear = clear_events(pa.array(texts), np.array([False, True, False]))
    assert clear.tolist() == [True, False, True]


def test_a_multiline_event_goes_to_the_full_checker():
    text = orjson.dumps(make_event(), option=orjson.OPT_INDENT_2).decode()
    assert not clear_events(pa.array([text]), np.zeros(1, dtype=bool)).any()
