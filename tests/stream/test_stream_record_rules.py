"""Record rules through the streaming graph: the IP forms table of issue 11.2
(tests/support/ip_cases.py), density rounding (11.1), values no reader can hold (12.2)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import orjson
from apache_beam.testing.test_stream import TestStream as EventScript
from apache_beam.utils.timestamp import Timestamp
from ip_cases import IP_CASES, ip_record

from stream_support import (
    T0,
    StreamRun,
    make_event,
    make_message,
    run_test_stream,
    timestamped,
)


def stream_all(messages: list, lake: Path) -> StreamRun:
    """Run `messages` (all on time) through the streaming graph into `lake`."""
    stream = (
        EventScript()
        .advance_watermark_to(Timestamp.from_utc_datetime(T0))
        .add_elements(messages)
        .advance_watermark_to_infinity()
    )
    return run_test_stream(stream, lake, shards=1)


def test_every_ip_form_through_the_stream(tmp_path: Path) -> None:
    messages = []
    for i, (_, event_ip, request_ip, batch_ip, _expected) in enumerate(IP_CASES):
        published = T0 + timedelta(seconds=2 + i)
        record = ip_record(make_event(i, T0 + timedelta(seconds=1)), event_ip, request_ip, batch_ip)
        record.update(receivedAt=published.isoformat(), connectionId=7)
        messages.append(timestamped(make_message(record, published, f"ps-{i}")))
    run = stream_all(messages, tmp_path)

    assert run.summary.reconciles, run.summary
    stored = {row["messageId"]: (row["context"] or {}).get("ip") for row in run.events}
    failed = {
        f"msg-{i}": f for i in range(len(IP_CASES)) for f in run.failed if f'"msg-{i}"' in f["raw"]
    }
    for i, (name, *_, expected) in enumerate(IP_CASES):
        if expected[0] == "stored":
            assert stored.get(f"msg-{i}", "missing") == expected[1], name
        else:
            assert f"msg-{i}" not in stored, name
            assert (failed[f"msg-{i}"]["reason"], failed[f"msg-{i}"]["field"]) == expected[1:], name
    assert len(run.events) + len(run.failed) == len(IP_CASES)


def test_record_rules_apply_to_the_stream(tmp_path: Path) -> None:
    """Density rounding (issue 11.1) and values no reader can hold (issue 12.2), streamed."""
    published = T0 + timedelta(seconds=5)
    at = T0 + timedelta(seconds=1)
    bodies = [
        orjson.dumps(make_event(0, at, context={"screen": {"density": 1.3636363636363635}})),
        orjson.dumps(make_event(1, at, properties={"v": 1})).replace(b'"v":1', b'"v":-Inf'),
        orjson.dumps(make_event(2, at, properties={"v": 1})).replace(b'"v":1', b'"v":1e400'),
        orjson.dumps(make_event(3, at, properties={"v": 1})).replace(
            b'"v":1', b'"v":' + b'{"a":' * 70 + b"1" + b"}" * 70
        ),
    ]
    messages = [
        timestamped(make_message(body.decode(), published, f"ps-{i}"))
        for i, body in enumerate(bodies)
    ]
    run = stream_all(messages, tmp_path)

    assert run.summary.reconciles
    [row] = run.events
    assert row["context"]["screen"]["density"] == Decimal("1.36")
    assert sorted((f["reason"], f["field"]) for f in run.failed) == [
        ("invalid_value", "properties"),
        ("invalid_value", "properties.v"),
        ("invalid_value", "properties.v"),
    ]


def test_a_message_that_is_not_utf8_is_a_failed_row_not_a_repaired_event(tmp_path: Path) -> None:
    """Issue 12.5 on the stream: bytes that are not UTF-8 are never replaced by U+FFFD."""
    published = T0 + timedelta(seconds=5)
    at = T0 + timedelta(seconds=1)
    good = orjson.dumps(make_event(0, at, properties={"name": "café"}))
    latin1 = orjson.dumps(make_event(1, at, properties={"name": "caf"})).replace(
        b'"caf"', b'"caf\xe9"'
    )
    messages = [
        timestamped(make_message(body, published, f"ps-{i}"))
        for i, body in enumerate([good, latin1])
    ]
    run = stream_all(messages, tmp_path)

    assert run.summary.reconciles and run.summary.read == 2
    [row] = run.events
    assert orjson.loads(row["properties"]) == {"name": "café"}
    [failed] = run.failed
    assert failed["reason"] == "invalid_json" and "not valid UTF-8" in failed["message"]
    assert "caf\\xe9" in failed["raw"] and "\ufffd" not in failed["raw"]
