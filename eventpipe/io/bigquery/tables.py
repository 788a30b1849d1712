"""BigQuery tables for events: creation, schema evolution, load jobs, partition swaps, run records.

- `prepare_tables` runs before a pipeline: it creates each missing table (day
  partitions on `timestamp` / `receivedAt`, clustering of `CLUSTERING_FIELDS`), adds
  the columns an older table lacks, and raises `IncompatibleTableError` before any row
  is written when a table cannot take our rows.
- `load_parquet` runs one Parquet load job; its id is derived from the run and the
  file's content (`load_job_id`), so a retried bundle cannot load its rows twice.
- `replace_partition` swaps one day partition of a table atomically (reprocessing).
- `read_day_keys` reads the (connectionId, messageId) keys a table holds on one day
  (deduplication against the table).
- `record_run` adds a run's summary to `DATASET.eventpipe_runs`.

The Beam transforms that use these are in `writers`. `BigQueryTarget.endpoint`
points the client at another API endpoint (the local emulator, with anonymous
credentials); without it the usual Google credentials are used (Application Default
Credentials).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from eventpipe.core.bigquery_client import make_client
from eventpipe.io.bigquery.rows import json_rows_of
from eventpipe.io.sink import SinkError
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
from eventpipe.schemas.failures import FAILED_SCHEMA

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)

FLUSH_ROWS = 100_000  # default rows_per_load: rows of one load job (one Parquet file)
INSERT_BATCH_ROWS = 500  # rows of one insert API request (Google recommends ~500)


class IncompatibleTableError(SinkError):
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
    # Where batch writes stage their Parquet files before loading (local folder or gs://
    # URL, seen by every worker) when no lake is given; see io.bigquery.staged.
    staging: str = ""

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


# --- deduplication: the keys a table holds ---------------------------------------------

_DAY_KEYS = """
    SELECT connectionId, messageId FROM `{table}`
    WHERE `{column}` >= @day_start AND `{column}` < @day_end
"""


def read_day_keys(client: bigquery.Client, table_id: str, day: dt.date) -> pa.Table:
    """(connectionId int32, messageId string) of the rows `table_id` holds on one UTC day.

    One parameterised query whose range on the partition column prunes every other
    day partition (it scans two narrow columns of one day).
    """
    from google.cloud import bigquery

    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("day_start", "TIMESTAMP", start),
            bigquery.ScalarQueryParameter("day_end", "TIMESTAMP", start + dt.timedelta(days=1)),
        ]
    )
    sql = _DAY_KEYS.format(table=table_id, column=PARTITION_FIELD)
    found = client.query(sql, job_config=config).to_arrow(create_bqstorage_client=False)
    return pa.table(
        {
            "connectionId": found["connectionId"].cast(pa.int32()),
            "messageId": found["messageId"].cast(pa.string()),
        }
    )


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
