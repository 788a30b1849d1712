"""The collector's groups are small, so the fixed cost of a run of the rule SQL counts: a
chunk where no record has a batch `context` is checked by the record query without the
context's leaf checks, and events by a validate query without the checks of the sections
none of them carries (such checks fire only when their section is present). Same answers,
proven here against the full queries, and what may carry a section gets its checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from eventpipe.core.duck import connect
from eventpipe.schemas.records import PARSED_SCHEMA, RECORDS_SCHEMA
from eventpipe.transforms.json_leaves import event_leaves
from eventpipe.transforms.parse import CLASSIFIED_SCHEMA, RecordParser
from eventpipe.transforms.validate import (
    ALL_SECTIONS,
    MAX_PLANS,
    EventValidator,
    possible_sections,
)

EVENT = {"type": "track", "event": "a", "anonymousId": "x"}
WITHOUT_CONTEXT = [
    {"batch": [EVENT], "sentAt": "2026-11-20T10:00:01Z"},
    {"batch": [EVENT], "sentAt": "yesterday"},
    {"batch": [EVENT], "connectionId": "7"},
    {"batch": [EVENT], "connectionId": 2**40},
    {"batch": "nope"},
    {"batch": []},
    [EVENT, EVENT],
    [],
    {"receivedAt": "2026-11-20T10:00:02Z", "ip": "81.2.69.160", "body": {"batch": [EVENT]}},
    {"receivedAt": "not a time", "body": [EVENT]},
    {"receivedAt": "2026-11-20T10:00:02Z", "ip": "999.1.1.1", "body": EVENT},
    {"receivedAt": "2026-11-20T10:00:02Z", "body": 5},
    '{"batch": [{"type": "track"}], "batch": []}',
    '{"batch": [',
    "7",
]


def _records(docs: list) -> pa.Table:
    texts = [d if isinstance(d, str) else json.dumps(d) for d in docs]
    n = len(texts)
    columns = [["f"] * n, list(range(1, n + 1)), [0] * n, texts]
    return pa.Table.from_arrays([pa.array(c) for c in columns], schema=RECORDS_SCHEMA)


@pytest.fixture
def parser() -> RecordParser:
    return RecordParser("t", datetime(2026, 12, 5, tzinfo=UTC)).bind(connect())


def _classified(parser: RecordParser, records: pa.Table) -> pa.Table:
    shape = parser.classify.run(parser.con, records)
    with_shape = records.append_column("ok", shape["ok"]).append_column("k", shape["k"])
    return with_shape.cast(CLASSIFIED_SCHEMA)


def test_without_a_batch_context_the_smaller_query_answers_as_the_full_one(parser) -> None:
    classified = _classified(parser, _records(WITHOUT_CONTEXT))
    assert parser._query_for(classified) is parser.query_without_context
    full = parser.query.run(parser.con, classified)
    smaller = parser.query_without_context.run(parser.con, classified)
    assert smaller.equals(full)
    assert full.filter(full["problem"].is_valid()).num_rows >= 9  # the cases do fail


@pytest.mark.parametrize(
    "doc",
    [
        {"batch": [EVENT], "context": {"ip": "not an ip"}},
        {"receivedAt": "2026-11-20T10:00:02Z", "body": {"batch": [EVENT], "context": {"ip": 1}}},
    ],
    ids=["batch", "envelope"],
)
def test_a_chunk_with_a_batch_context_gets_its_checks(parser, doc) -> None:
    records = _records([*WITHOUT_CONTEXT[:3], doc])
    assert parser._query_for(_classified(parser, records)) is parser.query
    failed = parser.parse(records).failed.to_pylist()
    assert [f["field"] for f in failed if f["line"] == 4] == ["context.ip"]


def _events_with_each_leaf_wrong() -> list[str]:
    """A valid event, then one per leaf of the schema with a value of the wrong JSON type
    there (sections included), each in an otherwise valid event."""
    out = [json.dumps(EVENT)]
    for leaf in event_leaves():
        event: dict = json.loads(json.dumps(EVENT))
        node = event
        parts = leaf.path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = 5 if leaf.field.kind in ("string", "uuid", "ip", "datetime") else "x"
        out.append(json.dumps(event))
    return out


def _validate_input(texts: list[str]) -> pa.Table:
    n = len(texts)
    parsed = PARSED_SCHEMA.empty_table().to_pydict()
    parsed.update(source=["f"] * n, line=list(range(1, n + 1)), index=[0] * n, payload=texts)
    for name in PARSED_SCHEMA.names:
        parsed[name] = parsed[name] or [None] * n
    table = pa.table(parsed, schema=PARSED_SCHEMA)
    return table.append_column("suspect", pa.array([False] * n))


def test_validate_plans_for_the_sections_a_chunk_carries_answer_as_the_full_query() -> None:
    validator = EventValidator("t", datetime(2026, 12, 5, tzinfo=UTC)).bind(connect())
    texts = _events_with_each_leaf_wrong()
    planned = 0
    for chunk in [texts, *([t] for t in texts)]:
        rows = _validate_input(chunk)
        query = validator.query_for(rows["payload"])
        planned += query is not validator.query
        full = validator.query.run(validator.con, rows)
        assert query.run(validator.con, rows).equals(full), chunk
        if len(chunk) == 1 and chunk[0] != texts[0]:
            assert full["problem"][0].is_valid, chunk  # each of these events is invalid
    assert planned >= MAX_PLANS  # the plans were used (then the full query, past the cap)


def test_a_key_spelled_with_an_escape_gets_every_check() -> None:
    validator = EventValidator("t", datetime(2026, 12, 5, tzinfo=UTC)).bind(connect())
    escaped = json.dumps({**EVENT, "context": {"p\\u0061ge": {"url": 5}}}).replace("\\\\", "\\")
    assert json.loads(escaped)["context"]["page"] == {"url": 5}
    rows = _validate_input([escaped])
    assert possible_sections(rows["payload"]) is None
    assert validator.query_for(rows["payload"]) is validator.plans[ALL_SECTIONS]
    failed = validator.validate(rows.drop_columns(["suspect"])).failed.to_pylist()
    assert [f["field"] for f in failed] == ["context.page.url"]
