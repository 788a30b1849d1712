"""Record forms the importer accepts, and the record-level rejections."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from pipeline_support import make_event

BATCH = {"batch": [make_event(), make_event(messageId="m2")], "sentAt": "2026-11-20T10:00:01Z"}


@pytest.mark.parametrize(
    ("case", "record", "events"),
    [
        ("batch document", BATCH, 2),
        ("array of events", [make_event(), make_event(messageId="m2")], 2),
        ("single event", make_event(), 1),
        (
            "envelope of a batch",
            {"receivedAt": "2026-11-20T10:00:02Z", "ip": "81.2.69.160", "body": BATCH},
            2,
        ),
        ("envelope of an array", {"receivedAt": "2026-11-20T10:00:02Z", "body": [make_event()]}, 1),
        ("envelope of an event", {"receivedAt": "2026-11-20T10:00:02Z", "body": make_event()}, 1),
        ("batch with writeKey", {**BATCH, "writeKey": "wk_123"}, 2),
        (
            "lenient-looking but strict JSON",
            '{"batch": [{"type": "track", "event": "a, }", "anonymousId": "x"}]}',
            1,
        ),
    ],
)
def test_record_forms(stages, case, record, events):
    out = stages.run(record)
    assert out.failed == []
    assert len(out.events) == events == out.read


@pytest.mark.parametrize(
    ("case", "record", "reason", "field"),
    [
        ("not JSON", "{not json", "invalid_json", None),
        ("truncated", '{"batch": [{"type": "track"', "invalid_json", None),
        (
            "trailing comma",
            '{"type": "track", "event": "e", "anonymousId": "a",}',
            "invalid_json",
            None,
        ),
        ("a number", "42", "invalid_record", None),
        ("a string", '"event"', "invalid_record", None),
        ("null", "null", "invalid_record", None),
        ("batch not an array", {"batch": {"type": "track"}}, "invalid_batch", "batch"),
        ("batch null", {"batch": None}, "invalid_batch", "batch"),
        ("empty batch", {"batch": []}, "empty_batch", None),
        ("empty array", [], "empty_batch", None),
        ("batch sentAt bad", {**BATCH, "sentAt": "yesterday"}, "invalid_batch", "sentAt"),
        ("batch context not an object", {**BATCH, "context": "web"}, "invalid_batch", "context"),
        (
            "batch context leaf bad",
            {**BATCH, "context": {"screen": {"width": "wide"}}},
            "invalid_batch",
            "context.screen.width",
        ),
        (
            "batch context ip bad",
            {**BATCH, "context": {"ip": "1.2.3"}},
            "invalid_batch",
            "context.ip",
        ),
        (
            "batch connectionId bad",
            {**BATCH, "connectionId": "seven"},
            "invalid_batch",
            "connectionId",
        ),
        (
            "envelope body a string",
            {"receivedAt": "2026-11-20T10:00:00Z", "body": "x"},
            "invalid_envelope",
            "body",
        ),
        ("envelope body null", {"body": None}, "invalid_envelope", "body"),
        (
            "envelope receivedAt bad",
            {"receivedAt": 5, "body": BATCH},
            "invalid_envelope",
            "receivedAt",
        ),
        ("envelope ip bad", {"ip": "localhost", "body": BATCH}, "invalid_envelope", "ip"),
        (
            "envelope connectionId bad",
            {"connectionId": 1.5, "body": BATCH},
            "invalid_envelope",
            "connectionId",
        ),
    ],
)
def test_record_rejections(stages, case, record, reason, field):
    out = stages.run(record)
    assert out.events == []
    [failure] = out.failed
    assert (failure["reason"], failure["field"]) == (reason, field)
    assert failure["index"] is None
    assert out.read == 1
    raw = record if isinstance(record, str) else orjson.dumps(record).decode()
    assert failure["raw"] == raw
    if field:
        assert f"'{field}'" in failure["message"]


def test_failed_record_keeps_its_line_and_envelope_time(stages):
    out = stages.run(
        make_event(), {"receivedAt": "2026-11-20T10:00:00Z", "ip": "bad", "body": BATCH}
    )
    [failure] = out.failed
    assert failure["line"] == 2
    assert failure["receivedAt"].isoformat() == "2026-11-20T10:00:00+00:00"
    assert failure["runId"] == "test-run"


def test_one_bad_record_does_not_affect_its_neighbours(stages):
    out = stages.run(BATCH, "garbage", BATCH)
    assert len(out.events) == 4
    assert [f["reason"] for f in out.failed] == ["invalid_json"]
    assert out.read == 5


def test_a_record_too_big_for_the_memory_budget_is_rejected_alone():
    """DuckDB runs out of memory on a record with millions of values: its chunk is parsed
    in halves, the record is rejected (`too_large`), its neighbours and the session live on."""
    from eventpipe.core.duck import connect
    from eventpipe.schemas.records import RECORDS_SCHEMA
    from eventpipe.transforms.parse import RecordParser

    from pipeline_support import RUN_START

    parser = RecordParser("test-run", RUN_START).bind(connect(memory_limit="64MB"))
    huge = {
        "receivedAt": "2026-11-20T10:00:02Z",
        "body": [make_event(properties={"a": [0] * 500_000})],
    }
    texts = [orjson.dumps(r).decode() for r in (BATCH, huge, BATCH, make_event())]
    records = pa.table([["f.jsonl"] * 4, [1, 2, 3, 4], [0] * 4, texts], schema=RECORDS_SCHEMA)
    result = parser.parse(records)
    assert result.units_read == 6
    assert sorted(result.events["line"].to_pylist()) == [1, 1, 3, 3, 4]
    [failure] = result.failed.to_pylist()
    assert (failure["reason"], failure["line"], failure["raw"]) == ("too_large", 2, texts[1])
    assert "more than the stage's memory limit (61.0 MiB)" in failure["message"]
    assert parser.parse(records.slice(0, 1)).events.num_rows == 2  # the session still works
