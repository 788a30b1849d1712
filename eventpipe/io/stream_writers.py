"""The stream's lake writers: windowed atomic Parquet files, per shard.

Time: the element timestamp of a chunk is the publish time of its oldest
message (the stream time); timers are event-time timers on the watermark.
Windows are this module's own (fixed windows of the event `timestamp`, kept in
per-shard state in the global window) rather than Beam's `WindowInto`: Beam
drops data behind the allowed lateness without a trace, and every event here
is written (late ones as further files of their own day's partition).

Keys of stateful steps are `int` shards with a declared type, so Beam's key coder
is deterministic (VarIntCoder), as runners other than the DirectRunner require.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    BagStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.utils.timestamp import MAX_TIMESTAMP, Timestamp

from eventpipe.core.stream_time import US, Keyed, ts_us
from eventpipe.io.lake import EVENTS, FAILED, RAW
from eventpipe.io.lake_sink import archive_table, day_slices, write_visible
from eventpipe.io.stream_windows import split_by_window, split_late, window_starts
from eventpipe.schemas import PARTITION_COLUMN, arrow_schema
from eventpipe.schemas.failures import FAILED_SCHEMA
from eventpipe.schemas.outputs import FAILED_ROWS, LATE, NAMESPACE, WRITTEN, files_metric
from eventpipe.schemas.records import ARCHIVE_COLUMN


def _failed_shard(failed: pa.Table, shards: int) -> Keyed:
    first = failed.slice(0, 1).to_pylist()[0]
    return zlib.crc32(f"{first['source']}:{first['line']}".encode()) % shards, failed


# --- windowed writes ----------------------------------------------------------------------


def window_file_name(run_id: str, window_start_us: int, shard: int, seq: int) -> str:
    """The deterministic name of a window's file: run, window start, shard, file sequence."""
    start = datetime.fromtimestamp(window_start_us / US, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"part-{run_id}-w{start}-s{shard:03d}-{seq:06d}.parquet"


def late_file_name(run_id: str, shard: int, seq: int) -> str:
    """The deterministic name of a shard's file of late events: run, shard, file sequence."""
    return f"part-{run_id}-late-s{shard:03d}-{seq:06d}.parquet"


BUFFER = BagStateSpec("buffer", PickleCoder())  # (window start us, table)
LATE_ROWS = BagStateSpec("late", PickleCoder())  # tables of late events
SEQ = ReadModifyWriteStateSpec("seq", PickleCoder())  # files written by this shard
NEXT = ReadModifyWriteStateSpec("next", PickleCoder())  # the flush timer's time (us)
FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
BUFFER_STATE = beam.DoFn.StateParam(BUFFER)
LATE_STATE = beam.DoFn.StateParam(LATE_ROWS)
SEQ_STATE = beam.DoFn.StateParam(SEQ)
NEXT_STATE = beam.DoFn.StateParam(NEXT)
FLUSH_TIMER = beam.DoFn.TimerParam(FLUSH)


class _WindowedWriteFn(beam.DoFn):
    """Buffers one shard's rows per window; writes each window's rows when the watermark passes
    its end (again for rows arriving within the allowed lateness). Late rows (their window
    closed) are buffered apart and written, at the next flush, as files of their day.
    """

    def __init__(
        self,
        lake: str,
        run_id: str,
        kind: str,
        window_s: int,
        lateness_s: float | None,
    ) -> None:
        self.lake = lake
        self.run_id = run_id
        self.kind = kind  # EVENTS (windows of `timestamp`) or FAILED (windows of stream time)
        self.window_us = int(window_s * US)
        self.lateness_us = None if lateness_s is None else int(lateness_s * US)

    def setup(self) -> None:
        self.schema = arrow_schema() if self.kind == EVENTS else FAILED_SCHEMA
        self.rows = Metrics.counter(NAMESPACE, WRITTEN if self.kind == EVENTS else FAILED_ROWS)
        self.files = Metrics.counter(NAMESPACE, files_metric(self.kind))
        self.late = Metrics.counter(NAMESPACE, LATE)

    def process(
        self,
        element: Keyed,
        timestamp: Timestamp = beam.DoFn.TimestampParam,
        buffer=BUFFER_STATE,
        late_buffer=LATE_STATE,
        next_state=NEXT_STATE,
        flush=FLUSH_TIMER,
    ) -> None:
        _, table = element
        now = ts_us(timestamp)
        due: list[int] = []
        if self.kind == EVENTS:
            if self.lateness_us is not None:
                split = split_late(table, now, self.window_us, self.lateness_us)
                table = split.on_time
                if split.late.num_rows:
                    late_buffer.add(split.late)
                    self.late.inc(split.late.num_rows)
                    due.append(now)  # written once the watermark reaches the stream time
            parts = split_by_window(table, "timestamp", self.window_us)
        else:
            parts = [(int(window_starts(np.array([now]), self.window_us)[0]), table)]
        for start, rows in parts:
            buffer.add((start, rows))
        if parts:
            due.append(min(start for start, _ in parts) + self.window_us)
        pending = next_state.read()
        if due and (pending is None or min(due) < pending):
            next_state.write(min(due))
            flush.set(Timestamp(micros=min(due)))

    @on_timer(FLUSH)
    def flush_windows(
        self,
        key=beam.DoFn.KeyParam,
        fired: Timestamp = beam.DoFn.TimestampParam,
        buffer=BUFFER_STATE,
        late_buffer=LATE_STATE,
        seq_state=SEQ_STATE,
        next_state=NEXT_STATE,
        flush=FLUSH_TIMER,
    ) -> None:
        now = ts_us(fired) if fired < MAX_TIMESTAMP else None  # None: end of the stream
        entries = list(buffer.read())
        buffer.clear()
        due: dict[int, list[pa.Table]] = {}
        kept = []
        for start, rows in entries:
            if now is None or start + self.window_us <= now:
                due.setdefault(start, []).append(rows)
            else:
                kept.append((start, rows))
        seq = seq_state.read() or 0
        for start in sorted(due):
            seq = self._write_days(pa.concat_tables(due[start]), seq, self._window_name(key, start))
        late = list(late_buffer.read())
        if late:
            late_buffer.clear()
            seq = self._write_days(pa.concat_tables(late), seq, self._late_name(key))
        seq_state.write(seq)
        for entry in kept:
            buffer.add(entry)
        if kept:
            first_end = min(start for start, _ in kept) + self.window_us
            next_state.write(first_end)
            flush.set(Timestamp(micros=first_end))
        else:
            next_state.clear()

    def _window_name(self, shard: int, start: int) -> Callable[[int], str]:
        return lambda seq: window_file_name(self.run_id, start, shard, seq)

    def _late_name(self, shard: int) -> Callable[[int], str]:
        return lambda seq: late_file_name(self.run_id, shard, seq)

    def _write_days(self, rows: pa.Table, seq: int, name: Callable[[int], str]) -> int:
        """Write rows as one file per date partition, named `name(seq)`. Returns the new seq.

        Event files get their `raw/` archive file (same name, same row order), committed
        with it in one lake transaction (io.lake_sink.write_visible).
        """
        date_column = "timestamp" if self.kind == EVENTS else "receivedAt"
        for date, part in day_slices(rows.sort_by(date_column), date_column):
            file = name(seq)
            rel = f"{PARTITION_COLUMN}={date}/{file}"
            files = []
            if self.kind == EVENTS and ARCHIVE_COLUMN in part.column_names:
                files.append((RAW, rel, archive_table(part)))
            files.append((self.kind, rel, part.select(self.schema.names).cast(self.schema)))
            write_visible(self.lake, f"{self.kind}-{file.removesuffix('.parquet')}", files)
            seq += 1
            self.rows.inc(part.num_rows)
            self.files.inc()
        return seq


class WriteWindowedEvents(beam.PTransform):
    """(shard, events) -> files `LAKE/events/date=D/part-<run>-w<window>-s<shard>-<n>.parquet`.

    Fixed windows of the event `timestamp`, `window_s` long. A window's rows are
    written when the watermark passes its end; rows arriving later, within
    `lateness_s`, are written as further files of the window. Rows arriving after
    that (late: an app that was offline, a replayed backlog) are written too, once,
    as further files of their own day (`part-<run>-late-s<shard>-<n>.parquet`), and
    counted `late`: the lateness only bounds how long a window's rows are gathered.
    """

    def __init__(self, lake: str, run_id: str, window_s: int, lateness_s: float) -> None:
        super().__init__()
        self.fn = _WindowedWriteFn(lake, run_id, EVENTS, window_s, lateness_s)

    def expand(self, keyed: beam.PCollection) -> beam.PCollection:
        return keyed | beam.ParDo(self.fn)


class WriteWindowedFailed(beam.PTransform):
    """Failed rows -> `LAKE/failed/date=D/part-...parquet` (date of receivedAt), per window of
    stream time and shard; failed rows are never late."""

    def __init__(self, lake: str, run_id: str, window_s: int, shards: int) -> None:
        super().__init__()
        self.fn = _WindowedWriteFn(lake, run_id, FAILED, window_s, None)
        self.shards = shards

    def expand(self, failed: beam.PCollection) -> beam.PCollection:
        shards = self.shards
        return (
            failed
            | "Shard" >> beam.Map(_failed_shard, shards).with_output_types(Keyed)
            | "Write" >> beam.ParDo(self.fn)
        )
