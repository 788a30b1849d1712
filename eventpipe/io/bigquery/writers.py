"""The BigQuery sink's Beam transforms (the client-side work is in `tables`).

- `WriteToBigQuery` (import) checks every event row against the schema inside the
  pipeline (bad rows go to the failed table, see `rows`), stages the good
  ones and drops duplicates (within the run and against the table: `staged`),
  then loads them as Parquet files of up to rows_per_load rows through load jobs (no
  streaming inserts: load jobs are free and faster for bulk data).
- `ReplaceDayPartitions` (reprocess) stages and deduplicates the checked rows the same
  way, then replaces each day of the range whole (`tables.replace_partition`).
- `InsertToBigQuery` (stream) sends checked rows through the insert API in batches,
  with `messageId` as the insert id; rows the API refuses become failed rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from eventpipe.core.duck import connect
from eventpipe.core.metrics import count_failed, emit
from eventpipe.io.bigquery.rows import check_rows, failed_rows_of, json_rows
from eventpipe.io.bigquery.staged import (
    StageForBigQuery,
    by_day,
    concat_staged,
    read_staged,
    remove_staging,
)
from eventpipe.io.bigquery.tables import (
    INSERT_BATCH_ROWS,
    BigQueryTarget,
    load_job_id,
    load_parquet,
    parquet_bytes,
    replace_partition,
)
from eventpipe.io.stream_windows import split_late
from eventpipe.schemas.bigquery_schema import load_arrow_schema
from eventpipe.schemas.failures import FAILED_SCHEMA, INVALID_VALUE
from eventpipe.schemas.outputs import FAILED_ROWS, FAILED_TAG, LATE, MAIN_TAG, NAMESPACE, WRITTEN

log = logging.getLogger(__name__)


class _LoadBundles(beam.DoFn):
    """Buffers the tables of one bundle; loads them as one Parquet file per rows_per_load rows."""

    def __init__(self, target: BigQueryTarget, table_id: str, schema: pa.Schema, counter: str):
        self.target = target
        self.table_id = table_id
        self.schema = schema
        self.counter_name = counter  # the run summary's `written` or `failed`
        self.run_id = ""

    def with_run(self, run_id: str) -> _LoadBundles:
        self.run_id = run_id
        return self

    def setup(self) -> None:
        self.client = self.target.client()
        self.rows = Metrics.counter(NAMESPACE, self.counter_name)

    def start_bundle(self) -> None:
        self.buffer: list[pa.Table] = []
        self.buffered = 0

    def process(self, table: pa.Table) -> Iterator[int]:
        self.buffer.append(table)
        self.buffered += table.num_rows
        while self.buffered >= self.target.rows_per_load:
            yield self._flush(self.target.rows_per_load)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self.buffer:
            yield WindowedValue(self._flush(), MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self, rows: int | None = None) -> int:
        """Load the first `rows` buffered rows (default: all) as one job."""
        buffered = pa.concat_tables(self.buffer)
        rows = buffered.num_rows if rows is None else rows
        rest = buffered.slice(rows)
        self.buffer, self.buffered = ([rest] if rest.num_rows else []), rest.num_rows
        table = buffered.slice(0, rows).select(self.schema.names).cast(self.schema)
        data = parquet_bytes(table)
        job_id = load_job_id(self.run_id, self.table_id, data)
        loaded = load_parquet(self.client, self.table_id, data, job_id)
        if loaded != table.num_rows:
            # A successful load job commits the whole file; the emulator reports wrong
            # counts when loads run concurrently, so this is a warning, not an error.
            log.warning(
                "load job %s reports %d rows for a file of %d", job_id, loaded, table.num_rows
            )
        self.rows.inc(table.num_rows)
        return table.num_rows


class _CheckRows(beam.DoFn):
    """Event tables -> rows that fit the BigQuery schema, and FAILED_TAG rows for the others."""

    def __init__(self, run_id: str, run_start: dt.datetime, keep_extra: bool) -> None:
        self.run_id = run_id
        self.run_start = run_start
        self.keep_extra = keep_extra

    def setup(self) -> None:
        self.con = connect()

    def teardown(self) -> None:
        self.con.close()

    def process(self, events: pa.Table) -> Iterator:
        good, bad = check_rows(events, self.con, self.run_id, self.run_start, self.keep_extra)
        yield from emit(good, bad)


class CheckRowsForBigQuery(beam.PTransform):
    """Event tables -> (rows BigQuery accepts, failed rows with the reason and column).

    The accepted rows keep the columns beyond the event schema (the archive column
    that staging and deduplication use).
    """

    def __init__(self, run_id: str, run_start: dt.datetime) -> None:
        super().__init__()
        self.fn = _CheckRows(run_id, run_start, keep_extra=True)

    def expand(self, pcoll: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = pcoll | beam.ParDo(self.fn).with_outputs(FAILED_TAG, main=MAIN_TAG)
        return outputs[MAIN_TAG], outputs[FAILED_TAG]


def _load_failed(target: BigQueryTarget, run_id: str) -> beam.ParDo:
    fn = _LoadBundles(target, target.failed_table, FAILED_SCHEMA, FAILED_ROWS)
    return beam.ParDo(fn.with_run(run_id))


class WriteToBigQuery(beam.PTransform):
    """Event rows and failed rows -> the target's two tables, deduplicated, through load jobs.

    Call `prepare_tables(target)` first. Files are staged under `staging` (a lake when
    `archive`: its raw/ then gets the archive of the loaded events, for reprocessing).
    Returns the PCollection of rows loaded per job.
    """

    def __init__(
        self,
        target: BigQueryTarget,
        run_id: str,
        run_start: dt.datetime,
        staging: str,
        buckets: int = 4,
        archive: bool = False,
    ) -> None:
        super().__init__()
        self.target = target
        self.run_id = run_id
        self.run_start = run_start
        self.staging = staging
        self.buckets = buckets
        self.archive = archive

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        events, failed = pcolls
        target, run = self.target, self.run_id
        good, bad = events | "CheckRows" >> CheckRowsForBigQuery(run, self.run_start)
        staged = good | "Stage" >> StageForBigQuery(
            target, self.staging, run, self.buckets, self.archive
        )
        loaded = read_staged(staged) | "LoadEvents" >> beam.ParDo(
            _LoadBundles(target, target.table, load_arrow_schema(), WRITTEN).with_run(run)
        )
        rejected = (
            (failed, bad)
            | "AllFailed" >> beam.Flatten()
            | "LoadFailed" >> _load_failed(target, run)
        )
        _ = remove_staging(events.pipeline, self.staging, run, loaded)
        return (loaded, rejected) | "AllLoads" >> beam.Flatten()


class _ReplaceDay(beam.DoFn):
    """(day, staged files) -> the day's partition replaced (a day of the range) or appended to."""

    def __init__(self, target: BigQueryTarget, run_id: str, days: tuple[str, ...]) -> None:
        self.target = target
        self.run_id = run_id
        self.days = frozenset(days)

    def setup(self) -> None:
        self.client = self.target.client()
        self.written = Metrics.counter(NAMESPACE, WRITTEN)

    def process(self, element: tuple[str, list[str | None]]) -> Iterator[int]:
        from eventpipe.schemas import arrow_schema

        day, paths = element
        found = concat_staged(paths)
        rows = pa.concat_tables(found) if found else arrow_schema().empty_table()
        if day in self.days:
            prefix = f"eventpipe_{self.run_id}_replace"
            written = replace_partition(
                self.client,
                self.target.table,
                dt.date.fromisoformat(day),
                rows,
                job_id_prefix=prefix,
                method=self.target.partition_swap,
            )
        elif rows.num_rows:  # an event whose recomputed day lies outside the range: added
            data = parquet_bytes(rows.select(load_arrow_schema().names).cast(load_arrow_schema()))
            load_parquet(
                self.client,
                self.target.table,
                data,
                load_job_id(self.run_id, self.target.table, data),
            )
            written = rows.num_rows
        else:
            written = 0
        self.written.inc(rows.num_rows)
        yield written


class ReplaceDayPartitions(beam.PTransform):
    """Reprocessing: event rows and failed rows -> each day of `days` replaced whole.

    The checked rows are staged under `staging` and deduplicated (within the run, and
    against the table's rows on days outside `days`), then grouped by UTC day of
    `timestamp` (file names only travel); each day of `days` (YYYY-MM-DD) is swapped
    atomically by `replace_partition` (a day with no rows left is emptied), rows of
    other days are appended; failed rows are loaded into the failed table.
    """

    def __init__(
        self,
        target: BigQueryTarget,
        run_id: str,
        run_start: dt.datetime,
        days: tuple[str, ...],
        staging: str,
        buckets: int = 4,
    ) -> None:
        super().__init__()
        self.target = target
        self.run_id = run_id
        self.run_start = run_start
        self.days = tuple(days)
        self.staging = staging
        self.buckets = buckets

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        events, failed = pcolls
        target, run = self.target, self.run_id
        good, bad = events | "CheckRows" >> CheckRowsForBigQuery(run, self.run_start)
        staged = good | "Stage" >> StageForBigQuery(
            target, self.staging, run, self.buckets, replace_days=self.days
        )
        every_day = events.pipeline | "Days" >> beam.Create([(d, None) for d in self.days])
        replaced = (
            (by_day(staged), every_day)
            | "AllDays" >> beam.Flatten()
            | "GroupDays" >> beam.GroupByKey()
            | "ReplaceDays" >> beam.ParDo(_ReplaceDay(target, run, self.days))
        )
        rejected = (
            (failed, bad)
            | "AllFailed" >> beam.Flatten()
            | "LoadFailed" >> _load_failed(target, run)
        )
        _ = remove_staging(events.pipeline, self.staging, run, replaced)
        return (replaced, rejected) | "AllLoads" >> beam.Flatten()


# --- streaming: the insert API ----------------------------------------------------------


class _InsertRows(beam.DoFn):
    """Checks event tables and inserts the good rows in batches; refused rows -> FAILED_TAG."""

    def __init__(
        self,
        target: BigQueryTarget,
        run_id: str,
        run_start: dt.datetime,
        batch_rows: int,
        lateness: tuple[int, float] | None,
    ) -> None:
        self.target = target
        self.run_id = run_id
        self.run_start = run_start
        self.batch_rows = batch_rows
        self.lateness = lateness  # (window s, allowed lateness s): late rows are counted

    def setup(self) -> None:
        self.client = self.target.client()
        self.con = connect()
        self.written = Metrics.counter(NAMESPACE, WRITTEN)
        self.late = Metrics.counter(NAMESPACE, LATE)

    def teardown(self) -> None:
        self.con.close()

    def process(
        self, events: pa.Table, timestamp: Timestamp = beam.DoFn.TimestampParam
    ) -> Iterator:
        if self.lateness is not None:
            window_s, lateness_s = self.lateness
            late = split_late(
                events, int(timestamp.micros), int(window_s * 1e6), int(lateness_s * 1e6)
            ).late
            self.late.inc(late.num_rows)  # inserted like any other row
        good, bad = check_rows(events, self.con, self.run_id, self.run_start)
        refused: list[pa.Table] = [bad]
        for start in range(0, good.num_rows, self.batch_rows):
            batch = good.slice(start, self.batch_rows)
            errors = self.client.insert_rows_json(
                self.target.table,
                json_rows(batch),
                row_ids=insert_ids(batch),
            )
            failed_at = {e["index"]: e.get("errors", []) for e in errors}
            self.written.inc(batch.num_rows - len(failed_at))
            if failed_at:
                refused.append(self._refused(batch, failed_at))
        failed = pa.concat_tables(refused)
        if failed.num_rows:
            count_failed(failed)
            yield beam.pvalue.TaggedOutput(FAILED_TAG, failed)

    def _refused(self, batch: pa.Table, failed_at: dict[int, list]) -> pa.Table:
        indices = sorted(failed_at)
        problems = []
        for i in indices:
            first = (failed_at[i] or [{}])[0]
            message = first.get("message") or first.get("reason") or "refused by the insert API"
            problems.append(
                {
                    "reason": INVALID_VALUE,
                    "field": first.get("location") or None,
                    "message": f"BigQuery insert refused the row: {message}",
                }
            )
        return failed_rows_of(batch.take(indices), problems, self.run_id, self.run_start)


def insert_ids(batch: pa.Table) -> list[str]:
    """The insert ids of event rows: `connectionId:messageId`, the events' identity."""
    ids = zip(batch["connectionId"].to_pylist(), batch["messageId"].to_pylist(), strict=True)
    return [f"{connection}:{message}" for connection, message in ids]


class InsertToBigQuery(beam.PTransform):
    """Streaming sink: event tables -> the target's event table through the insert API.

    Returns the failed rows (rows the schema check or the API refused), for the
    stream's failed sink. Counts `written`, and `late` (rows whose window of `window_s`
    had closed `lateness_s` before they arrived: inserted like the others). Rows carry `connectionId:messageId` as
    their insert id, so BigQuery drops, best effort, a row re-sent within its
    de-duplication window (about a minute): what covers a retried insert request.
    Copies further apart are the stream's DeduplicateEvents' job (within its expiry);
    rows already in the table are not looked up.
    """

    def __init__(
        self,
        target: BigQueryTarget,
        run_id: str,
        run_start: dt.datetime,
        window_s: int | None = None,
        lateness_s: float | None = None,
        batch_rows: int = INSERT_BATCH_ROWS,
    ) -> None:
        super().__init__()
        lateness = None if window_s is None or lateness_s is None else (window_s, lateness_s)
        self.fn = _InsertRows(target, run_id, run_start, batch_rows, lateness)

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        outputs = events | beam.ParDo(self.fn).with_outputs(FAILED_TAG, main=MAIN_TAG)
        return outputs[FAILED_TAG]
