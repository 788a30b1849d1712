"""The IP forms table of issue 11.2 (tests/pipeline/ip_cases.py) through the streaming graph."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from apache_beam.testing.test_stream import TestStream as EventScript
from apache_beam.utils.timestamp import Timestamp
from ip_cases import IP_CASES, ip_record

from stream_support import T0, make_event, make_message, run_test_stream, timestamped


def test_every_ip_form_through_the_stream(tmp_path: Path) -> None:
    messages = []
    for i, (_, event_ip, request_ip, batch_ip, _expected) in enumerate(IP_CASES):
        published = T0 + timedelta(seconds=2 + i)
        record = ip_record(make_event(i, T0 + timedelta(seconds=1)), event_ip, request_ip, batch_ip)
        record.update(receivedAt=published.isoformat(), connectionId=7)
        messages.append(timestamped(make_message(record, published, f"ps-{i}")))
    stream = (
        EventScript()
        .advance_watermark_to(Timestamp.from_utc_datetime(T0))
        .add_elements(messages)
        .advance_watermark_to_infinity()
    )
    run = run_test_stream(stream, tmp_path, shards=1)

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
