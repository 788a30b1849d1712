"""Sink: a BigQuery event table and failed table (load jobs for batch, insert API for streams).

- `prepare_tables` runs before a pipeline: it creates each missing table (day
  partitions on `timestamp` / `receivedAt`, clustering of `CLUSTERING_FIELDS`), adds
  the columns an older table lacks, and raises `IncompatibleTableError` before any row
  is written when a table cannot take our rows.
- `WriteToBigQuery` (batch: import, reprocess) checks every event row against the
  schema inside the pipeline (bad rows go to the failed table, see `bigquery_rows`),
  then loads each bundle's rows as one Parquet file through a load job (no streaming
  inserts: load jobs are free and faster for bulk data). A load job's id is derived
  from the run and the file's content, so a retried bundle cannot load its rows twice.
- `InsertToBigQuery` (streaming) sends checked rows through the insert API in batches,
  with `messageId` as the insert id; rows the API refuses become failed rows.
- `replace_partition` swaps one day partition of a table atomically (reprocessing).

`BigQueryTarget.endpoint` points the client at another API endpoint (the local
emulator, with anonymous credentials); without it the usual Google credentials are
used (Application Default Credentials).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from eventpipe.io.bigquery_rows import check_rows, failed_rows_of, json_rows, json_rows_of
from eventpipe.schemas.bigquery_schema import (
    CLUSTERING_FIELDS,
    FAILED_PARTITION_FIELD,
    PARTITION_FIELD,
    compare_schemas,
    event_table_schema,
    evolved_schema,
    failed_table_schema,
    load_arrow_schema,
)
from eventpipe.transforms.duck import connect
from eventpipe.transforms.failures import FAILED_SCHEMA, INVALID_VALUE
from eventpipe.transforms.stages import FAILED, MAIN, NAMESPACE, count_failed, emit

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)

FLUSH_ROWS = 100_000  # default rows_per_load: rows of one load job (one Parquet file)
INSERT_BATCH_ROWS = 500  # rows of one insert API request (Google recommends ~500)


class IncompatibleTableError(RuntimeError):
    """An existing table whose schema cannot take the rows we write."""


@dataclass(frozen=True)
class BigQueryTarget:
    """Where rows go: `PROJECT.DATASET.TABLE` ids, and the API endpoint (None: Google's)."""

    table: str
    failed_table: str = ""  # default: TABLE_failed next to the event table
    endpoint: str | None = None
    job_project: str = ""  # project that runs jobs; default: the table's project
    location: str | None = None
    # A load job starts once this many rows are buffered (and for the rest when a bundle
    # ends). BigQuery allows 1,500 load jobs per table and day: big imports want more rows.
    rows_per_load: int = FLUSH_ROWS
    # How replace_partition swaps a day: "decorator" (BigQuery) or "transaction" (emulators).
    partition_swap: str = "decorator"

    def __post_init__(self) -> None:
        for name in (self.table, self.failed_table):
            if name and len(name.split(".")) != 3:
                raise ValueError(f"{name!r} is not a table id of the form PROJECT.DATASET.TABLE")
        if not self.failed_table:
            object.__setattr__(self, "failed_table", self.table + "_failed")
        if not self.job_project:
            object.__setattr__(self, "job_project", self.table.split(".")[0])

    def client(self) -> bigquery.Client:
        """A client for this target (call it per worker, in `DoFn.setup`)."""
        return make_client(self.job_project, self.endpoint, self.location)


def make_client(
    project: str, endpoint: str | None = None, location: str | None = None
) -> bigquery.Client:
    """A BigQuery client: at `endpoint` with anonymous credentials, else Google's API with ADC."""
    from google.cloud import bigquery

    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
            location=location,
        )
    return bigquery.Client(project=project, location=location)


# --- tables ---------------------------------------------------------------------------


def ensure_table(
    client: bigquery.Client,
    table_id: str,
    schema: list[bigquery.SchemaField],
    partition_field: str,
    clustering: tuple[str, ...] = (),
) -> str:
    """Create `table_id` when missing, or add the columns it lacks. Returns what was done.

    Raises IncompatibleTableError, naming every conflicting column, when the existing
    table cannot take rows of `schema`.
    """
    from google.api_core.exceptions import Conflict, NotFound
    from google.cloud import bigquery

    try:
        table = client.get_table(table_id)
    except NotFound:
        table = bigquery.Table(table_id, schema=schema)
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=partition_field
        )
        if clustering:
            table.clustering_fields = list(clustering)
        try:
            client.create_table(table)
        except Conflict:  # another job created it meanwhile: check it like any existing table
            return ensure_table(client, table_id, schema, partition_field, clustering)
        return f"created {table_id} (day partitions on {partition_field})"
    comparison = compare_schemas(table.schema, schema)
    if not comparison.compatible:
        raise IncompatibleTableError(
            f"table {table_id} cannot take eventpipe rows: " + "; ".join(comparison.conflicts)
        )
    if not comparison.missing:
        return f"{table_id} is up to date"
    table.schema = evolved_schema(table.schema, schema)
    client.update_table(table, ["schema"])
    return f"added columns to {table_id}: {', '.join(comparison.missing)}"


def prepare_tables(target: BigQueryTarget, client: bigquery.Client | None = None) -> list[str]:
    """Create or evolve the event and failed tables (before any row is written)."""
    client = client or target.client()
    return [
        ensure_table(
            client, target.table, event_table_schema(), PARTITION_FIELD, CLUSTERING_FIELDS
        ),
        ensure_table(client, target.failed_table, failed_table_schema(), FAILED_PARTITION_FIELD),
    ]


# --- load jobs --------------------------------------------------------------------------


def parquet_bytes(table: pa.Table) -> bytes:
    """One Parquet file (zstd) of `table`, in memory."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def load_job_id(run_id: str, table_id: str, data: bytes) -> str:
    """A job id unique to this run, table and file content: a retry reuses it."""
    digest = hashlib.sha256(table_id.encode() + b"\0" + data).hexdigest()[:40]
    return f"eventpipe_{run_id}_{digest}"


def load_parquet(
    client: bigquery.Client,
    table_id: str,
    data: bytes,
    job_id: str,
    write_disposition: str = "WRITE_APPEND",
    attempts: int = 5,
) -> int:
    """Run one Parquet load job and return the rows it loaded.

    When a job of this id succeeded already (a retried bundle), its outcome is taken
    instead of loading the rows again; after a failed job of this id, the next try
    uses the id with a suffix (`_1`, `_2`...).
    """
    from google.api_core.exceptions import Conflict, NotFound
    from google.cloud import bigquery

    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET, write_disposition=write_disposition
    )
    error: Exception | None = None
    for attempt in range(attempts):
        this_id = job_id if attempt == 0 else f"{job_id}_{attempt}"
        try:
            job = client.get_job(this_id)
        except NotFound:
            try:
                job = client.load_table_from_file(
                    io.BytesIO(data), table_id, job_id=this_id, job_config=config
                )
            except Conflict:  # started meanwhile by another attempt of the same bundle
                job = client.get_job(this_id)
        else:
            log.info("load job %s ran already; taking its result", this_id)
        try:
            job.result()
        except Exception as exc:  # the job's own error: try again under a new id
            if not job.done() or job.error_result is None:
                raise
            log.warning("load job %s failed: %s", this_id, job.error_result)
            error = exc
            continue
        return int(job.output_rows or 0)
    raise RuntimeError(f"{attempts} load jobs for {table_id} failed") from error


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
        if self.buffered >= self.target.rows_per_load:
            yield self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self.buffer:
            yield WindowedValue(self._flush(), MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self) -> int:
        table = pa.concat_tables(self.buffer).select(self.schema.names).cast(self.schema)
        self.buffer, self.buffered = [], 0
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
    """Event tables -> rows that fit the BigQuery schema, and FAILED rows for the others."""

    def __init__(self, run_id: str, run_start: dt.datetime) -> None:
        self.run_id = run_id
        self.run_start = run_start

    def setup(self) -> None:
        self.con = connect()

    def teardown(self) -> None:
        self.con.close()

    def process(self, events: pa.Table) -> Iterator:
        good, bad = check_rows(events, self.con, self.run_id, self.run_start)
        yield from emit(good, bad)


class CheckRowsForBigQuery(beam.PTransform):
    """Event tables -> (rows BigQuery accepts, failed rows with the reason and column)."""

    def __init__(self, run_id: str, run_start: dt.datetime) -> None:
        super().__init__()
        self.fn = _CheckRows(run_id, run_start)

    def expand(self, pcoll: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = pcoll | beam.ParDo(self.fn).with_outputs(FAILED, main=MAIN)
        return outputs[MAIN], outputs[FAILED]


class WriteToBigQuery(beam.PTransform):
    """Event rows and failed rows -> the target's two tables, through Parquet load jobs.

    Call `prepare_tables(target)` first. Returns the PCollection of rows loaded per job.
    """

    def __init__(self, target: BigQueryTarget, run_id: str, run_start: dt.datetime) -> None:
        super().__init__()
        self.target = target
        self.run_id = run_id
        self.run_start = run_start

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        events, failed = pcolls
        good, bad = events | "CheckRows" >> CheckRowsForBigQuery(self.run_id, self.run_start)
        all_failed = (failed, bad) | "AllFailed" >> beam.Flatten()
        target = self.target
        loaded = good | "LoadEvents" >> beam.ParDo(
            _LoadBundles(target, target.table, load_arrow_schema(), "written").with_run(self.run_id)
        )
        rejected = all_failed | "LoadFailed" >> beam.ParDo(
            _LoadBundles(target, target.failed_table, FAILED_SCHEMA, "failed").with_run(self.run_id)
        )
        return (loaded, rejected) | "AllLoads" >> beam.Flatten()


# --- reprocessing: one partition replaced atomically --------------------------------------


def replace_partition(
    client: bigquery.Client,
    table_id: str,
    day: dt.date,
    rows: pa.Table,
    job_id_prefix: str = "eventpipe_replace",
    method: str = "decorator",
) -> int:
    """Replace the rows of one day partition of `table_id` by `rows`, atomically.

    `method="decorator"` (BigQuery): one load job into `TABLE$YYYYMMDD` with
    WRITE_TRUNCATE: the partition is swapped whole when the job commits, and a failed
    job changes nothing. `method="transaction"` (for endpoints without partition
    decorators, such as the emulator): the rows are loaded into a staging table, then
    one multi-statement transaction deletes the day and inserts them. Every row of
    `rows` must fall on `day` (UTC date of the partition column); returns rows written.
    """
    table = client.get_table(table_id)
    partition_field = table.time_partitioning.field if table.time_partitioning else None
    if partition_field is None:
        raise ValueError(f"{table_id} is not partitioned by a column")
    _check_one_day(rows, partition_field, day)
    schema = load_arrow_schema() if partition_field == PARTITION_FIELD else FAILED_SCHEMA
    data = parquet_bytes(rows.select(schema.names).cast(schema))
    suffix = day.strftime("%Y%m%d")
    job_id = f"{job_id_prefix}_{suffix}_{hashlib.sha256(data).hexdigest()[:32]}"
    if method == "decorator":
        return load_parquet(client, f"{table_id}${suffix}", data, job_id, "WRITE_TRUNCATE")
    if method != "transaction":
        raise ValueError(f"unknown method {method!r}: decorator or transaction")
    return _replace_by_transaction(client, table, day, data, job_id)


def _check_one_day(rows: pa.Table, column: str, day: dt.date) -> None:
    import pyarrow.compute as pc

    if rows.num_rows == 0:
        return
    days = pc.unique(pc.cast(rows[column], pa.date32())).to_pylist()
    if days != [day]:
        raise ValueError(f"rows for partition {day} hold {column} dates {sorted(map(str, days))}")


def _replace_by_transaction(
    client: bigquery.Client, table: bigquery.Table, day: dt.date, data: bytes, job_id: str
) -> int:
    from google.cloud import bigquery

    table_id = f"{table.project}.{table.dataset_id}.{table.table_id}"
    staging_id = f"{table.project}.{table.dataset_id}._staging_{job_id}"
    client.create_table(bigquery.Table(staging_id, schema=table.schema))
    try:
        loaded = load_parquet(client, staging_id, data, job_id + "_load")
        column = f"`{table.time_partitioning.field}`"
        names = ", ".join(f"`{f.name}`" for f in table.schema)
        # The day is a date we computed, not user text: a literal is safe here (the
        # emulator's scripts take no query parameters).
        script = (
            "BEGIN TRANSACTION;\n"
            f"DELETE FROM `{table_id}` WHERE DATE({column}) = DATE '{day.isoformat()}';\n"
            f"INSERT INTO `{table_id}` ({names}) SELECT {names} FROM `{staging_id}`;\n"
            "COMMIT TRANSACTION;"
        )
        client.query(script).result()
        return loaded
    finally:
        client.delete_table(staging_id, not_found_ok=True)


class _DaySlices(beam.DoFn):
    """Event tables -> (YYYY-MM-DD, rows of that UTC day of `timestamp`)."""

    def process(self, events: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        from eventpipe.io.lake_sink import day_slices

        yield from day_slices(events.sort_by(PARTITION_FIELD), PARTITION_FIELD)


class _ReplaceDay(beam.DoFn):
    """(day, row tables) -> the day's partition replaced (a day of the range) or appended to."""

    def __init__(self, target: BigQueryTarget, run_id: str, days: tuple[str, ...]) -> None:
        self.target = target
        self.run_id = run_id
        self.days = frozenset(days)

    def setup(self) -> None:
        self.client = self.target.client()
        self.written = Metrics.counter(NAMESPACE, "written")

    def process(self, element: tuple[str, list]) -> Iterator[int]:
        from eventpipe.schemas import arrow_schema

        day, tables = element
        found = [t for t in tables if t is not None]
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
            data = parquet_bytes(rows.cast(load_arrow_schema()))
            load_parquet(self.client, self.target.table, data, load_job_id(self.run_id, self.target.table, data))
            written = rows.num_rows
        else:
            written = 0
        self.written.inc(rows.num_rows)
        yield written


class ReplaceDayPartitions(beam.PTransform):
    """Reprocessing: event rows and failed rows -> each day of `days` replaced whole.

    The checked rows are grouped by UTC day of `timestamp`; each day of `days` (YYYY-MM-DD)
    is swapped atomically by `replace_partition` (a day with no rows left is emptied), rows
    of other days are appended; failed rows are loaded into the failed table.
    """

    def __init__(
        self, target: BigQueryTarget, run_id: str, run_start: dt.datetime, days: tuple[str, ...]
    ) -> None:
        super().__init__()
        self.target = target
        self.run_id = run_id
        self.run_start = run_start
        self.days = tuple(days)

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        events, failed = pcolls
        good, bad = events | "CheckRows" >> CheckRowsForBigQuery(self.run_id, self.run_start)
        every_day = events.pipeline | "Days" >> beam.Create([(d, None) for d in self.days])
        replaced = (
            (good | "DaySlices" >> beam.ParDo(_DaySlices()), every_day)
            | "AllDays" >> beam.Flatten()
            | "GroupDays" >> beam.GroupByKey()
            | "ReplaceDays" >> beam.ParDo(_ReplaceDay(self.target, self.run_id, self.days))
        )
        target = self.target
        rejected = (
            (failed, bad)
            | "AllFailed" >> beam.Flatten()
            | "LoadFailed"
            >> beam.ParDo(
                _LoadBundles(target, target.failed_table, FAILED_SCHEMA, "failed").with_run(
                    self.run_id
                )
            )
        )
        return (replaced, rejected) | "AllLoads" >> beam.Flatten()


# --- streaming: the insert API ----------------------------------------------------------


class _InsertRows(beam.DoFn):
    """Checks event tables and inserts the good rows in batches; refused rows -> FAILED."""

    def __init__(
        self, target: BigQueryTarget, run_id: str, run_start: dt.datetime, batch_rows: int
    ) -> None:
        self.target = target
        self.run_id = run_id
        self.run_start = run_start
        self.batch_rows = batch_rows

    def setup(self) -> None:
        self.client = self.target.client()
        self.con = connect()
        self.written = Metrics.counter(NAMESPACE, "written")

    def teardown(self) -> None:
        self.con.close()

    def process(self, events: pa.Table) -> Iterator:
        good, bad = check_rows(events, self.con, self.run_id, self.run_start)
        refused: list[pa.Table] = [bad]
        for start in range(0, good.num_rows, self.batch_rows):
            batch = good.slice(start, self.batch_rows)
            errors = self.client.insert_rows_json(
                self.target.table,
                json_rows(batch),
                row_ids=batch["messageId"].to_pylist(),
            )
            failed_at = {e["index"]: e.get("errors", []) for e in errors}
            self.written.inc(batch.num_rows - len(failed_at))
            if failed_at:
                refused.append(self._refused(batch, failed_at))
        failed = pa.concat_tables(refused)
        if failed.num_rows:
            count_failed(failed)
            yield beam.pvalue.TaggedOutput(FAILED, failed)

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


class InsertToBigQuery(beam.PTransform):
    """Streaming sink: event tables -> the target's event table through the insert API.

    Returns the failed rows (rows the schema check or the API refused), for the
    stream's failed sink. Counts `written`. Rows carry `messageId` as their insert id,
    so BigQuery drops a row re-sent within its de-duplication window.
    """

    def __init__(
        self,
        target: BigQueryTarget,
        run_id: str,
        run_start: dt.datetime,
        batch_rows: int = INSERT_BATCH_ROWS,
    ) -> None:
        super().__init__()
        self.fn = _InsertRows(target, run_id, run_start, batch_rows)

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        outputs = events | beam.ParDo(self.fn).with_outputs(FAILED, main=MAIN)
        return outputs[FAILED]


# --- run summaries -------------------------------------------------------------------------

RUNS_TABLE = "eventpipe_runs"


def record_run(target: BigQueryTarget, run_id: str, finished_at: dt.datetime, summary: dict) -> str:
    """Add a run's summary to `DATASET.eventpipe_runs` (created when missing); returns its id."""
    from google.cloud import bigquery

    project, dataset, _ = target.table.split(".")
    table_id = f"{project}.{dataset}.{RUNS_TABLE}"
    schema = [
        bigquery.SchemaField("runId", "STRING", mode="REQUIRED"),
        bigquery.SchemaField("finishedAt", "TIMESTAMP", mode="REQUIRED"),
        bigquery.SchemaField("summary", "JSON", mode="REQUIRED"),
    ]
    client = target.client()
    client.create_table(bigquery.Table(table_id, schema=schema), exists_ok=True)
    text = json.dumps(summary, default=str)  # JSON columns take JSON text on the insert API
    row = {"runId": run_id, "finishedAt": finished_at.isoformat(), "summary": text}
    errors = client.insert_rows_json(table_id, json_rows_of([row]), row_ids=[run_id])
    if errors:
        raise RuntimeError(f"could not record run {run_id} in {table_id}: {errors}")
    return table_id
