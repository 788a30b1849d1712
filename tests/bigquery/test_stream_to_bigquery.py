"""The streaming graph with the BigQuery sink: deduplicated events through the insert API."""

from __future__ import annotations

from datetime import timedelta

from apache_beam.testing.test_stream import TestStream as EventScript
from apache_beam.utils.timestamp import Timestamp

from eventpipe.io.beam_compat import local_streaming_runner
from eventpipe.io.bigquery.sink import BigQuerySink
from eventpipe.io.bigquery.tables import prepare_tables

from stream_support import T0, make_event, make_message, run_test_stream, timestamped


def test_stream_inserts_unique_and_late_events_and_keeps_failures_in_the_lake(
    bq_client, bq_target, tmp_path
):
    prepare_tables(bq_target, bq_client)

    def message(i: int, seconds: float, message_id: str, published_s: float | None = None, **kw):
        at = T0 + timedelta(seconds=seconds)
        published = T0 + timedelta(seconds=seconds if published_s is None else published_s)
        return timestamped(make_message(make_event(i, at, **kw), published, message_id))

    stream = (
        EventScript()
        .advance_watermark_to(Timestamp.from_utc_datetime(T0))
        .add_elements([message(i, i, f"ps-{i}") for i in range(1, 6)])
        .add_elements([message(2, 2, "ps-2")])  # redelivered: a duplicate
        .add_elements([message(6, 6, "ps-6", event=...)])  # a track event without `event`
        # A day late (the 60 s window closed long before it was published): inserted, counted.
        .add_elements([message(7, -86_400, "ps-7", published_s=10)])
        .advance_watermark_to_infinity()
    )
    with local_streaming_runner():
        run = run_test_stream(stream, tmp_path, shards=1, sink=BigQuerySink(bq_target))

    assert run.summary.reconciles
    summary = (run.summary.read, run.summary.written, run.summary.failed, run.summary.duplicates)
    assert summary == (8, 6, 1, 1)
    assert run.summary.late == 1
    rows = bq_client.query(f"SELECT messageId FROM `{bq_target.table}` ORDER BY messageId")
    assert [r["messageId"] for r in rows] == [f"msg-{i}" for i in (1, 2, 3, 4, 5, 7)]
    assert run.events == []  # nothing in lake/events
    assert [(f["reason"], f["field"]) for f in run.failed] == [("missing_property", "event")]
