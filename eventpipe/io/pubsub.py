"""Source: Pub/Sub messages -> chunks of raw records (the input of ParseRecords).

A message is a landing envelope (`{"receivedAt", "ip", "connectionId", "body"}`)
or a raw batch / event / array of events. A raw one is wrapped in an envelope
built from the message attributes `receivedAt`, `ip` and `connectionId`, with the
publish time as `receivedAt` when the attribute is absent. An envelope's own
fields win over attributes. Each record's `source` is
`<subscription>/messages/<messageId>`, so a failed row names its message.

The graph reads with Beam's `ReadFromPubSub` (on Dataflow: the native source,
which acks after durable checkpoints and drains with `gcloud dataflow jobs drain`).
Local runs read with `beam_compat`'s local reader, configured by `LocalReadSettings`
and stopped by `request_stop` (in memory: a crash of a local run loses what was
pulled and not yet written).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import apache_beam as beam
import duckdb
import orjson
import pyarrow as pa
from apache_beam.io.gcp.pubsub import PubsubMessage, ReadFromPubSub
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from eventpipe.core.duck import connect
from eventpipe.core.metrics import count_failed
from eventpipe.schemas.failures import INVALID_JSON, rejected_records
from eventpipe.schemas.outputs import FAILED_TAG, MAIN_TAG, MESSAGES, NAMESPACE, READ
from eventpipe.schemas.records import RECORDS_SCHEMA

log = logging.getLogger(__name__)


# --- messages -> records (pure) -------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """What the job uses of one Pub/Sub message."""

    data: bytes
    attributes: dict[str, str]
    message_id: str
    publish_time: datetime  # UTC


def _json_value(value: str, numeric: bool) -> str:
    if numeric and value.lstrip("-").isdigit():
        return value
    return orjson.dumps(value).decode()


def envelope_text(message: Message, body: str) -> str:
    """`body` wrapped in a landing envelope built from the attributes (else the publish time)."""
    attrs = message.attributes
    received = attrs.get("receivedAt") or message.publish_time.astimezone(UTC).isoformat()
    parts = [f'"receivedAt":{_json_value(received, False)}']
    if attrs.get("ip"):
        parts.append(f'"ip":{_json_value(attrs["ip"], False)}')
    if attrs.get("connectionId"):
        parts.append(f'"connectionId":{_json_value(attrs["connectionId"], True)}')
    return "{" + ",".join(parts) + ',"body":' + body + "}"


_SHAPE_SQL = """
    SELECT ok AS json,
           CASE WHEN ok THEN coalesce(json_type(raw) = 'OBJECT'
                                      AND json_type(raw, '$.body') IS NOT NULL, false)
                ELSE false END AS envelope
    FROM (SELECT raw, coalesce(json_valid(raw), false) AS ok FROM messages)
"""


def message_source(subscription: str, message: Message) -> str:
    """The `source` of a message's records and failed rows."""
    return f"{subscription}/messages/{message.message_id}"


def split_not_utf8(messages: list[Message]) -> tuple[list[Message], list[tuple[Message, str]]]:
    """(messages whose data is UTF-8, [(message, why not) for the others])."""
    good: list[Message] = []
    bad: list[tuple[Message, str]] = []
    for m in messages:
        try:
            m.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            at = exc.start
            why = f"{exc.reason}: byte 0x{m.data[at]:02x} at byte {at + 1} of the message"
            bad.append((m, f"the message is not valid UTF-8 ({why})"))
        else:
            good.append(m)
    return good, bad


def failed_not_utf8(
    bad: list[tuple[Message, str]], subscription: str, run_id: str
) -> list[pa.Table]:
    """Failed rows (`invalid_json`) of messages that are not UTF-8: their bytes kept in `raw`
    (invalid ones as `\\xNN`), received at their publish time."""
    return [
        rejected_records(
            message_source(subscription, m),
            [1],
            INVALID_JSON,
            [why],
            [m.data.decode("utf-8", errors="backslashreplace")],
            run_id,
            m.publish_time,
        )
        for m, why in bad
    ]


def records_from_messages(
    messages: list[Message], subscription: str, con: duckdb.DuckDBPyConnection
) -> pa.Table:
    """A chunk of raw records (RECORDS_SCHEMA), one per message (all valid UTF-8: see
    `split_not_utf8`).

    Envelopes pass as they are; other JSON is wrapped (`envelope_text`); text that
    is not JSON passes as it is, so parse rejects it (`invalid_json`) with its text.
    """
    texts = [m.data.decode("utf-8") for m in messages]
    con.register("messages", pa.table({"raw": pa.array(texts, pa.string())}))
    try:
        shape = con.sql(_SHAPE_SQL).to_arrow_table()
    finally:
        con.unregister("messages")
    is_json = shape["json"].to_pylist()
    is_envelope = shape["envelope"].to_pylist()
    raws = [
        text if envelope or not ok else envelope_text(m, text)
        for m, text, ok, envelope in zip(messages, texts, is_json, is_envelope, strict=True)
    ]
    n = len(messages)
    return pa.Table.from_arrays(
        [
            pa.array([message_source(subscription, m) for m in messages], pa.string()),
            pa.array([1] * n, pa.int64()),
            pa.array([0] * n, pa.int32()),
            pa.array(raws, pa.string()),
        ],
        schema=RECORDS_SCHEMA,
    )


# --- Beam: messages -> record chunks -----------------------------------------------------


class _MessagesToRecordsFn(beam.DoFn):
    """Buffers the messages of a bundle and emits them as one record chunk (Arrow table);
    messages that are not UTF-8 become failed rows (tagged FAILED_TAG, counted as read)."""

    def __init__(self, subscription: str, max_records: int, run_id: str) -> None:
        self.subscription = subscription
        self.max_records = max_records
        self.run_id = run_id

    def setup(self) -> None:
        self.con = connect()
        self.messages_counter = Metrics.counter(NAMESPACE, MESSAGES)
        self.read = Metrics.counter(NAMESPACE, READ)

    def teardown(self) -> None:
        self.con.close()

    def start_bundle(self) -> None:
        self.buffer: list[Message] = []
        self.oldest: Timestamp | None = None

    def process(
        self, message: PubsubMessage, timestamp: Timestamp = beam.DoFn.TimestampParam
    ) -> Iterator[pa.Table]:
        # The element timestamp is the publish time (Beam's source, without timestamp_attribute).
        published = message.publish_time or timestamp.to_utc_datetime(has_tz=True)
        self.buffer.append(
            Message(
                message.data, dict(message.attributes or {}), message.message_id or "", published
            )
        )
        self.oldest = timestamp if self.oldest is None else min(self.oldest, timestamp)
        if len(self.buffer) >= self.max_records:
            yield from self._flush(windowed=False)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        yield from self._flush(windowed=True)

    def _flush(self, windowed: bool) -> Iterator:
        if not self.buffer:
            return
        self.messages_counter.inc(len(self.buffer))
        good, bad = split_not_utf8(self.buffer)
        oldest = self.oldest
        self.buffer, self.oldest = [], None
        outputs: list = [records_from_messages(good, self.subscription, self.con)] if good else []
        for failed in failed_not_utf8(bad, self.subscription, self.run_id):
            self.read.inc(failed.num_rows)
            count_failed(failed)
            outputs.append(beam.pvalue.TaggedOutput(FAILED_TAG, failed))
        for output in outputs:
            if not windowed:
                yield output
            elif isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(
                    output.tag, WindowedValue(output.value, oldest, [GlobalWindow()])
                )
            else:
                yield WindowedValue(output, oldest, [GlobalWindow()])


class MessagesToRecords(beam.PTransform):
    """Pub/Sub messages -> (chunks of raw records, one chunk per bundle of at most
    `max_records`; failed rows of messages that are not UTF-8)."""

    def __init__(self, subscription: str, run_id: str, max_records: int = 5000) -> None:
        super().__init__()
        self.fn = _MessagesToRecordsFn(subscription, max_records, run_id)

    def expand(self, messages: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = messages | beam.ParDo(self.fn).with_output_types(pa.Table).with_outputs(
            FAILED_TAG, main=MAIN_TAG
        )
        return outputs[MAIN_TAG], outputs[FAILED_TAG]


def failed_to_messages(failed: pa.Table) -> list[bytes]:
    """One dead-letter message (the failed row as JSON) per failed row."""
    return [orjson.dumps(row, default=str) for row in failed.to_pylist()]


# --- the local reader ----------------------------------------------------------------------


@dataclass(frozen=True)
class LocalReadSettings:
    """How the local reader (`beam_compat`) pulls and when it stops."""

    stop_key: str  # request_stop(stop_key) ends the source
    max_messages: int = 1000
    pull_timeout: float = 1.0
    idle_stop_seconds: float | None = None


_STOP_REQUESTS: dict[str, threading.Event] = {}
_LOCK = threading.Lock()


def stop_event(key: str) -> threading.Event:
    """The event that ends the local reader of `key` once set."""
    with _LOCK:
        return _STOP_REQUESTS.setdefault(key, threading.Event())


def request_stop(key: str) -> None:
    """Ask the local reader of `key` to stop pulling and let the pipeline drain."""
    stop_event(key).set()


class ReadPubSubMessages(ReadFromPubSub):
    """Beam's ReadFromPubSub (with attributes), carrying the settings of the local reader."""

    def __init__(self, subscription: str, local: LocalReadSettings | None = None) -> None:
        super().__init__(subscription=subscription, with_attributes=True)
        self._source.local_settings = local
