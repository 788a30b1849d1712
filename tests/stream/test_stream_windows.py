"""Windowing, lateness and dedupe of the streaming graph: TestStream on the DirectRunner."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_stream import TestStream as EventScript
from apache_beam.utils.timestamp import Timestamp

from eventpipe.identity.graph import KPID_MAP_SCHEMA
from eventpipe.identity.stitch_stage import _StitchFn

from stream_support import T0, make_event, make_message, run_test_stream, timestamped


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def wm(seconds: float) -> Timestamp:
    return Timestamp.from_utc_datetime(at(seconds))


def msg(i: int, event_s: float, published_s: float, **overrides):
    return make_message(make_event(i, at(event_s), **overrides), at(published_s), f"ps-{i}")


def test_windows_lateness_and_redeliveries(tmp_path: Path) -> None:
    redelivered = msg(1, 10, 12)  # the same Pub/Sub message again: same id, same publish time
    stream = (
        EventScript()
        .advance_watermark_to(wm(0))
        .add_elements(
            [timestamped(msg(1, 10, 12)), timestamped(msg(2, 20, 21)), timestamped(msg(3, 70, 71))]
        )
        .advance_processing_time(30)  # processing time alone writes nothing
        .advance_watermark_to(wm(65))  # window [0, 60) is written: events 1, 2
        .add_elements([timestamped(msg(4, 30, 80))])  # within the 30 s lateness: a 2nd file
        .add_elements([timestamped(redelivered, arrival=at(12))])  # a duplicate
        .advance_watermark_to(wm(95))
        .add_elements([timestamped(msg(5, 40, 95))])  # window [0, 60) closed at 90: late
        .add_elements([timestamped(msg(6, -86_400, 96))])  # a day late: its own day's partition
        .add_elements([timestamped(make_message(make_event(5, at(40)), at(97), "ps-5-again"))])
        .advance_watermark_to(wm(200))  # window [60, 120) and the late events are written
        # msg-3 again, 120 s after it was seen: beyond the 100 s dedupe window, so kept.
        .add_elements([timestamped(make_message(make_event(3, at(190)), at(190), "ps-again"))])
        .advance_watermark_to_infinity()  # drain: window [180, 240) is written
    )
    run = run_test_stream(stream, tmp_path, shards=1, dedupe_expiry_s=100)

    assert run.summary.reconciles
    assert (run.summary.read, run.summary.written, run.summary.failed, run.summary.duplicates) == (
        9,
        7,
        0,
        2,
    )
    assert run.summary.late == 2  # written (part of `written`), not failed
    assert run.failed == []
    events_files = [f for f in run.files if f.startswith("events/")]
    # Each file: its name without the shard's file sequence, and its events in order.
    stored = sorted(
        (re.sub(r"-\d{6}\.parquet$", "", f), pq.read_table(tmp_path / f)["messageId"].to_pylist())
        for f in events_files
    )
    window = "events/date=2026-11-25/part-test-run-w20261125T{}Z-s000"
    assert stored == [
        ("events/date=2026-11-24/part-test-run-late-s000", ["msg-6"]),  # its own day
        ("events/date=2026-11-25/part-test-run-late-s000", ["msg-5"]),  # once
        (window.format("120000"), ["msg-1", "msg-2"]),  # on time, sorted by timestamp
        (window.format("120000"), ["msg-4"]),  # within the allowed lateness
        (window.format("120100"), ["msg-3"]),
        (window.format("120300"), ["msg-3"]),
    ]
    assert len({f.rsplit("-", 1)[1] for f in events_files}) == len(events_files)  # sequences
    assert all(e["connectionId"] == 7 for e in run.events)


def test_events_older_than_the_opt_in_maximum_age_fail_as_too_old(tmp_path: Path) -> None:
    stream = (
        EventScript()
        .advance_watermark_to(wm(0))
        .add_elements([timestamped(msg(1, 0, 10)), timestamped(msg(2, -7200, 10))])
        .add_elements([timestamped(msg(3, -3000, 10))])  # late, but within the maximum age
        .add_elements([timestamped(msg(2, -7200, 10))])  # redelivered: a duplicate, not a 2nd fail
        .advance_watermark_to_infinity()
    )
    run = run_test_stream(stream, tmp_path, shards=1, max_event_age_s=3600)

    summary = run.summary
    assert summary.reconciles
    assert (summary.read, summary.written, summary.failed, summary.duplicates, summary.late) == (
        4,
        2,
        1,
        1,
        1,
    )
    assert sorted(e["messageId"] for e in run.events) == ["msg-1", "msg-3"]
    [old] = run.failed
    assert (old["reason"], old["field"]) == ("too_old", "timestamp")
    assert "maximum event age 3600s" in old["message"]
    assert '"msg-2"' in old["raw"]


def test_invalid_records_and_envelopes_reach_the_failed_table(tmp_path: Path) -> None:
    envelope = {
        "receivedAt": at(5).isoformat(),
        "ip": "81.2.69.160",
        "connectionId": 3,
        "body": {"batch": [make_event(1, at(5)), make_event(2, at(6), event=...)]},
    }
    stream = (
        EventScript()
        .advance_watermark_to(wm(0))
        .add_elements(
            [
                timestamped(make_message(envelope, at(7), "ps-env", attributes={})),
                timestamped(make_message('{"not json', at(8), "ps-bad")),
                timestamped(make_message(make_event(3, at(9)), at(9), "ps-noconn", attributes={})),
            ]
        )
        .advance_watermark_to_infinity()
    )
    run = run_test_stream(stream, tmp_path)

    assert run.summary.reconciles
    assert (run.summary.read, run.summary.written, run.summary.failed) == (4, 1, 3)
    [event] = run.events
    assert (event["messageId"], event["connectionId"], event["context"]["ip"]) == (
        "msg-1",
        3,
        "81.2.69.160",
    )
    assert event["receivedAt"] == at(5)
    reasons = sorted((f["reason"], f["field"]) for f in run.failed)
    assert reasons == [
        ("invalid_json", None),
        ("missing_property", "connectionId"),
        ("missing_property", "event"),
    ]
    bad = next(f for f in run.failed if f["reason"] == "invalid_json")
    assert bad["source"].endswith("/messages/ps-bad")
    assert bad["raw"] == '{"not json'


def write_map(path: Path, kpid: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"kind": ["user"], "id": ["u1"], "kpid": [kpid]}, schema=KPID_MAP_SCHEMA)
    pq.write_table(table, path)


def test_the_kpid_map_is_reread_when_stream_time_passes_the_refresh_period(tmp_path: Path) -> None:
    from pipeline_support import Stages

    events = Stages().run_tables(['{"type":"identify","userId":"u1","messageId":"m"}'])[0]
    path = tmp_path / "identity" / "kpid_map.parquet"
    fn = _StitchFn(str(tmp_path), refresh_us=60_000_000)
    fn.setup()

    def kpid_at(seconds: float) -> str | None:
        [out] = list(fn.process(events, Timestamp.from_utc_datetime(at(seconds))))
        return out["kpid"][0].as_py()

    assert kpid_at(0) is None  # no map yet: kpid stays null
    write_map(path, "k-first")
    assert kpid_at(30) is None  # not re-read before the period
    assert kpid_at(60) == "k-first"
    write_map(path, "k-second-longer")
    assert kpid_at(100) == "k-first"
    assert kpid_at(120) == "k-second-longer"
    path.unlink()
    assert kpid_at(180) is None
