"""The streaming Beam stages before the writers: shard, deduplicate, reject too old.

Elements are Arrow tables, as in the batch stages. State lives per shard (a
small int key: `shard_of` hashes each event's (connectionId, messageId)), so
only whole tables are shuffled, never one element per event. Stream time and
timers: as in `io.stream_writers`.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import MAX_TIMESTAMP, Timestamp

from eventpipe.core.metrics import count_failed
from eventpipe.core.stream_time import US, Keyed, ts_us
from eventpipe.schemas.outputs import DUPLICATES, FAILED_TAG, MAIN_TAG, NAMESPACE
from eventpipe.transforms.streaming import (
    SEEN_SCHEMA,
    drop_seen,
    prune_seen,
    shard_of,
    split_too_old,
)


@beam.typehints.with_output_types(Keyed)
class _ShardEventsFn(beam.DoFn):
    def __init__(self, shards: int) -> None:
        self.shards = shards

    def process(self, events: pa.Table) -> Iterator[tuple[int, pa.Table]]:
        shards = shard_of(events, self.shards)
        for shard in np.unique(shards).tolist():
            yield shard, events.filter(pa.array(shards == shard))


# --- deduplication ------------------------------------------------------------------------


# State and timers (module-level: the DoFn parameters below refer to them).
SEEN = ReadModifyWriteStateSpec("seen", PickleCoder())  # SEEN_SCHEMA table
EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)
SEEN_STATE = beam.DoFn.StateParam(SEEN)
EXPIRE_TIMER = beam.DoFn.TimerParam(EXPIRE)


@beam.typehints.with_output_types(Keyed)
class _DedupeFn(beam.DoFn):
    """Drops events whose (connectionId, messageId) this shard saw within `expiry`."""

    def __init__(self, expiry_s: float) -> None:
        self.expiry_us = int(expiry_s * US)

    def setup(self) -> None:
        self.duplicates = Metrics.counter(NAMESPACE, DUPLICATES)

    def process(
        self,
        element: tuple[int, pa.Table],
        timestamp: Timestamp = beam.DoFn.TimestampParam,
        seen_state=SEEN_STATE,
        expire=EXPIRE_TIMER,
    ) -> Iterator[tuple[int, pa.Table]]:
        shard, events = element
        seen = seen_state.read() or SEEN_SCHEMA.empty_table()
        now = ts_us(timestamp)
        result = drop_seen(events, seen, now, self.expiry_us)
        seen_state.write(result.seen)
        expire.set(Timestamp(micros=now + self.expiry_us))
        if result.duplicates:
            self.duplicates.inc(result.duplicates)
        if result.unique.num_rows:
            yield shard, result.unique

    @on_timer(EXPIRE)
    def expire_keys(
        self,
        fired: Timestamp = beam.DoFn.TimestampParam,
        seen_state=SEEN_STATE,
    ) -> None:
        seen = seen_state.read()
        if seen is None:
            return
        kept = prune_seen(seen, ts_us(fired) - self.expiry_us) if fired < MAX_TIMESTAMP else None
        if kept is None or kept.num_rows == 0:
            seen_state.clear()
        else:
            seen_state.write(kept)


class DeduplicateEvents(beam.PTransform):
    """Events -> (shard, events), each (connectionId, messageId) once within `expiry_s`.

    Pub/Sub redelivers messages (at-least-once); the same event arriving again
    within `expiry_s` of stream time is dropped and counted (`duplicates`). Keys
    expire when the watermark passes their time + `expiry_s` (a timer), and as
    newer batches of the same shard come in, so the state stays bounded.
    """

    def __init__(self, shards: int, expiry_s: float) -> None:
        super().__init__()
        self.shards = shards
        self.expiry_s = expiry_s

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        return (
            events
            | "Shard" >> beam.ParDo(_ShardEventsFn(self.shards))
            | "DropSeen" >> beam.ParDo(_DedupeFn(self.expiry_s))
        )


# --- event age (opt-in) --------------------------------------------------------------------


@beam.typehints.with_output_types(Keyed)
class _RejectTooOldFn(beam.DoFn):
    def __init__(self, max_age_s: float, run_id: str) -> None:
        self.max_age_us = int(max_age_s * US)
        self.run_id = run_id

    def process(self, element: Keyed, timestamp: Timestamp = beam.DoFn.TimestampParam) -> Iterator:
        shard, events = element
        split = split_too_old(events, ts_us(timestamp), self.max_age_us, self.run_id)
        if split.kept.num_rows:
            yield shard, split.kept
        if split.too_old.num_rows:
            count_failed(split.too_old)
            yield beam.pvalue.TaggedOutput(FAILED_TAG, split.too_old)


class RejectTooOldEvents(beam.PTransform):
    """(shard, events) -> ((shard, events), failed rows): an event whose `timestamp` is more
    than `max_age_s` before its arrival (the stream time of its chunk) fails with reason
    `too_old`. Applied after deduplication, so a redelivered copy counts as a duplicate.

    Only with `stream --max-event-age`: by default no event is too old.
    """

    def __init__(self, max_age_s: float, run_id: str) -> None:
        super().__init__()
        self.fn = _RejectTooOldFn(max_age_s, run_id)

    def expand(self, keyed: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = keyed | beam.ParDo(self.fn).with_outputs(FAILED_TAG, main=MAIN_TAG)
        return outputs[MAIN_TAG], outputs[FAILED_TAG]
