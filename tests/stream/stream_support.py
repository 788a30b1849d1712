"""Helpers of the streaming tests: event and message factories, a TestStream runner."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apache_beam as beam
import orjson
import pyarrow.dataset as ds
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream as EventScript
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from eventpipe.io.lake_target import LakeSink
from eventpipe.jobs.summary import RunSummary, summary_from_metrics
from eventpipe.pipelines.stream_pipeline import StreamConfig, build_stream_pipeline

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SUBSCRIPTION = "projects/eventpipe-test/subscriptions/events"


def make_event(i: int, at: datetime, **overrides: Any) -> dict[str, Any]:
    """A valid track event number `i` at time `at`; overrides replace (or, with ..., remove) keys."""
    event: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": f"anon-{i}",
        "messageId": f"msg-{i}",
        "timestamp": at.isoformat(),
        "properties": {"n": i},
    }
    for key, value in copy.deepcopy(overrides).items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def make_message(
    body: Any, published: datetime, message_id: str, attributes: dict[str, str] | None = None
) -> PubsubMessage:
    """A Pub/Sub message as Beam's reader gives it (body: bytes or text as is, else
    JSON-encoded)."""
    if isinstance(body, bytes):
        data = body
    else:
        data = body.encode() if isinstance(body, str) else orjson.dumps(body)
    return PubsubMessage(
        data,
        attributes if attributes is not None else {"connectionId": "7"},
        message_id=message_id,
        publish_time=published,
    )


def timestamped(message: PubsubMessage, arrival: datetime | None = None) -> TimestampedValue:
    """A message as the source emits it: timestamped with its publish time (or `arrival`)."""
    return TimestampedValue(message, Timestamp.from_utc_datetime(arrival or message.publish_time))


@dataclass
class StreamRun:
    summary: RunSummary
    events: list[dict]
    failed: list[dict]
    files: list[str]  # lake-relative paths of the Parquet files


def run_test_stream(stream: EventScript, lake: Path, **config: Any) -> StreamRun:
    """Run the streaming graph on `stream` (TestStream of messages) into `lake`, on the DirectRunner."""
    settings = {
        "subscription": SUBSCRIPTION,
        "lake": str(lake),
        "run_id": "test-run",
        "run_start": T0,
        "sink": LakeSink(str(lake)),
        "enrich": None,
        "window_s": 60,
        "allowed_lateness_s": 30,
        **config,
    }
    pipeline = beam.Pipeline(options=PipelineOptions(["--streaming"]))
    build_stream_pipeline(pipeline | stream, StreamConfig(**settings))
    result = pipeline.run()
    result.wait_until_finish()
    return StreamRun(
        summary_from_metrics(result, "test-run", streaming=True),
        read_table(lake, "events"),
        read_table(lake, "failed"),
        sorted(str(p.relative_to(lake)) for p in lake.glob("*/*/*.parquet")),
    )


def read_table(lake: Path, name: str) -> list[dict]:
    """The rows of LAKE/<name> (hive-partitioned), or [] when it has no file."""
    if not list((lake / name).glob("*/*.parquet")):
        return []
    return ds.dataset(lake / name, format="parquet", partitioning="hive").to_table().to_pylist()
