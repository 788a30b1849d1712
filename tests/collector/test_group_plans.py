"""The collector's groups are small, so the fixed cost of a run of the rule SQL counts: a
chunk where no record has a batch `context` is checked by the record query without the
context's leaf checks (which only fire when a context is present). Same answers, proven
here against the full query, and a chunk with a context still gets every check."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from eventpipe.transforms.duck import connect
from eventpipe.transforms.parse import CLASSIFIED_SCHEMA, RECORDS_SCHEMA, RecordParser

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
