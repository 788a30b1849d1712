"""Values no reader can hold are rejected with their field, in every spelling (issue 12.2),
and the timestamp and duplicate-key rules of issue 12.9."""

from __future__ import annotations

import pyarrow as pa
import pytest

from eventpipe.core.duck import connect
from eventpipe.schemas.records import RECORDS_SCHEMA
from eventpipe.transforms.validate import EventValidator

from pipeline_support import RUN_START, Stages

EVENT = (
    '{"type":"track","event":"E","anonymousId":"a","messageId":"m1",'
    '"timestamp":"2026-10-10T10:00:00Z","properties":{"v":%s}}'
)


@pytest.fixture(scope="module")
def stages() -> Stages:
    return Stages(default_connection=1)


def only_failure(stages: Stages, record: str) -> dict:
    out = stages.run(record)
    assert out.events == [], f"stored: {out.events}"
    [failure] = out.failed
    return failure


@pytest.mark.parametrize(
    "token",
    ["nan", "NaN", "NAN", "-nan", "inf", "-inf", "Inf", "INF", "Infinity", "-Infinity",
     "infinity", "1e400", "-1e400", "1E+999", "1e-400"],
)  # fmt: skip
def test_non_finite_and_out_of_range_numbers_are_rejected_with_their_field(stages, token):
    failure = only_failure(stages, EVENT % token)
    assert (failure["reason"], failure["field"]) == ("invalid_value", "properties.v")
    assert "'properties.v'" in failure["message"]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("[1, 2,\n nan]", "properties.v[2]"),
        ('{"a": {"b": [0, {"c": -Infinity}]}}', "properties.v.a.b[1].c"),
        ("123456789012345678901234567890", "properties.v"),  # 30 digits: never rounded
        ("-9999999999999999999", "properties.v"),  # below int64
        ("18446744073709551616", "properties.v"),  # above uint64
    ],
)
def test_the_field_is_the_path_of_the_value(stages, value, field):
    failure = only_failure(stages, EVENT % value)
    assert (failure["reason"], failure["field"]) == ("invalid_value", field)


@pytest.mark.parametrize(
    "value",
    ["18446744073709551615", "-9223372036854775808", "1.7976931348623157e308", "5e-324",
     '"nan"', '"Infinity and beyond"', '{"nan": "inf"}', "0.1234567890123456789012"],
)  # fmt: skip
def test_numbers_a_double_or_64_bits_hold_are_stored(stages, value):
    out = stages.run(EVENT % value)
    assert out.failed == [] and len(out.events) == 1


def test_only_the_bad_event_of_a_batch_is_rejected(stages):
    out = stages.run('{"batch": [' + EVENT % 1 + ", " + EVENT % "nan" + "]}")
    assert len(out.events) == 1
    [failure] = out.failed
    assert (failure["reason"], failure["field"], failure["index"]) == (
        "invalid_value",
        "properties.v",
        1,
    )


def test_typed_floats_must_be_finite_in_the_event_and_in_the_batch_context(stages):
    event = EVENT.replace('"properties"', '"context":{"location":{"speed":-inf}},"properties"')
    failure = only_failure(stages, event % 1)
    assert (failure["reason"], failure["field"]) == ("invalid_value", "context.location.speed")
    failure = only_failure(
        stages, '{"batch": [%s], "context": {"location": {"latitude": NaN}}}' % (EVENT % 1)
    )
    assert (failure["reason"], failure["field"]) == ("invalid_batch", "context.location.latitude")


def nested(depth: int) -> str:
    """A properties value whose innermost object is `depth` levels below the event."""
    return '{"a":' * (depth - 2) + "1" + "}" * (depth - 2)


def test_nesting_deeper_than_64_levels_is_rejected(stages):
    assert len(stages.run(EVENT % nested(64)).events) == 1
    failure = only_failure(stages, EVENT % nested(65))
    assert (failure["reason"], failure["field"]) == ("invalid_value", "properties")
    assert "deeper than 64 levels" in failure["message"]
    failure = only_failure(stages, EVENT % nested(10_000))
    assert failure["field"] == "properties"


def test_a_higher_depth_limit_can_be_set(stages):
    validator = EventValidator("t", RUN_START, max_depth=200).bind(connect())
    records = [EVENT % nested(150), EVENT % nested(201)]
    table = pa.table([["f"] * 2, [1, 2], [0, 0], records], schema=RECORDS_SCHEMA)
    result = validator.validate(stages.chain.parser.parse(table).events)
    assert result.valid["line"].to_pylist() == [1]
    assert result.failed["field"].to_pylist() == ["properties"]


def test_trailing_commas_still_make_the_record_invalid_json(stages):
    assert only_failure(stages, EVENT % "[1, 2,]")["reason"] == "invalid_json"
    assert len(stages.run(EVENT % '"a,]"').events) == 1  # inside a string it is text


EVENT_AT = '{"type":"track","event":"E","anonymousId":"a","messageId":"m1","timestamp":"%s"}'


@pytest.mark.parametrize(
    ("timestamp", "ok"),
    [
        ("2026-10-10T10:00:00+99:00", False),
        ("2026-10-10T10:00:00-14:01", False),
        ("2026-10-10T10:00:00+15:00", False),
        ("2026-10-10T10:00:00+05:60", False),
        ("2026-10-10T10:00:00+14:00", True),
        ("2026-10-10T10:00:00-14:00", True),
        ("2026-10-10T10:00:00+13:59", True),
        ("2026-10-10T10:00:00+0530", True),
        ("2026-10-10T10:00:00-03", True),
    ],
)
def test_utc_offsets_beyond_14_hours_are_rejected(stages, timestamp, ok):
    out = stages.run(EVENT_AT % timestamp)
    if ok:
        assert out.failed == [] and len(out.events) == 1
    else:
        [failure] = out.failed
        assert (failure["reason"], failure["field"]) == ("invalid_value", "timestamp")
        assert "+-14:00" in failure["message"]


def test_a_bad_offset_in_the_batch_or_envelope_rejects_the_record(stages):
    batch = '{"batch": [%s], "sentAt": "2026-10-10T10:00:00+24:00"}' % (EVENT % 1)
    assert (only_failure(stages, batch)["reason"], only_failure(stages, batch)["field"]) == (
        "invalid_batch",
        "sentAt",
    )
    envelope = '{"receivedAt": "2026-10-10T10:00:00-20:00", "body": %s}' % (EVENT % 1)
    assert only_failure(stages, envelope)["field"] == "receivedAt"


E1, E2 = EVENT % 1, (EVENT % 2).replace('"m1"', '"m2"')


@pytest.mark.parametrize(
    ("record", "field", "index"),
    [
        ('{"batch": [' + E1 + '], "batch": [' + E2 + "]}", "batch", None),
        ('{"body": {"batch": [' + E1 + '], "batch": [' + E2 + "]}}", "body.batch", None),
        ('{"body": {"batch": [' + E1 + ']}, "body": {"batch": [' + E2 + "]}}", "body", None),
        ('{"batch": [' + E1 + '], "context": {}, "context": {}}', "context", None),
        (E1[:-1] + ', "event": "F"}', "event", 0),
        (E1[:-1] + ', "context": {"ip": "192.0.2.1", "ip": "192.0.2.2"}}', "context.ip", 0),
        (E1.replace('{"v":1}', '{"v":1, "v":2}'), "properties.v", 0),
        ("[" + E1 + ", " + E2[:-1] + ', "userId": "u", "userId": "v"}]', "userId", 1),
    ],
)
def test_objects_with_a_key_twice_are_rejected_not_resolved_first_wins(
    stages, record, field, index
):
    out = stages.run(record)
    failure = out.failed[-1]
    assert (failure["reason"], failure["field"], failure["index"]) == ("invalid_json", field, index)
    assert "more than once" in failure["message"]
    assert len(out.events) == (1 if index == 1 else 0)  # the other event of an array is kept
