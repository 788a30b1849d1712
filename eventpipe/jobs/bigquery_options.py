"""The BigQuery sink's flags, shared by the jobs that write events (import, reprocess, stream)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from eventpipe.io.bigquery import FLUSH_ROWS, BigQueryTarget, record_run
from eventpipe.jobs.common import run_pipeline
from eventpipe.jobs.flag_types import positive_int
from eventpipe.jobs.summary import RunSummary

SINKS = ("lake", "bigquery")


def add_bigquery_arguments(parser: argparse.ArgumentParser, sink_help: str | None = None) -> None:
    """Add --sink and the --bq-* flags."""
    parser.add_argument(
        "--sink",
        choices=SINKS,
        default="lake",
        help=sink_help
        or "where events and failed records go: the Parquet lake (--lake) or BigQuery "
        "(--bq-table) (default: %(default)s)",
    )
    group = parser.add_argument_group("BigQuery sink (--sink bigquery)")
    group.add_argument(
        "--bq-table",
        metavar="PROJECT.DATASET.TABLE",
        help="the event table; created when missing (day partitions on timestamp, clustered "
        "by userId, anonymousId, event, type); an older compatible table gets the new columns",
    )
    group.add_argument(
        "--bq-failed-table",
        metavar="PROJECT.DATASET.TABLE",
        help="the failed table (default: the event table's name + '_failed')",
    )
    group.add_argument(
        "--bq-endpoint",
        metavar="URL",
        help="BigQuery API endpoint, e.g. a local emulator (http://127.0.0.1:9050), used "
        "with anonymous credentials; default: Google's API with Application Default "
        "Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud auth, or the worker's account)",
    )
    group.add_argument(
        "--bq-rows-per-load",
        type=positive_int,
        default=FLUSH_ROWS,
        metavar="N",
        help="rows buffered by a worker before it starts a load job (default %(default)s); "
        "BigQuery allows 1,500 load jobs per table and day, so raise it for very large imports",
    )
    group.add_argument(
        "--bq-partition-swap",
        choices=("decorator", "transaction"),
        default="decorator",
        help="how reprocess replaces a day: a WRITE_TRUNCATE load into TABLE$YYYYMMDD "
        "(BigQuery), or a staging table and one DELETE+INSERT transaction (for endpoints "
        "without partition decorators, such as the emulator); default %(default)s",
    )
    group.add_argument(
        "--bq-staging",
        metavar="DIR_OR_URL",
        help="where batch jobs stage Parquet files before loading them (every worker must see "
        "it: gs://... on Dataflow); default: --lake when given, else Beam's --temp_location, "
        "else a new local temporary folder",
    )
    group.add_argument(
        "--bq-project",
        metavar="PROJECT",
        help="project that runs the load and query jobs (default: the table's project)",
    )


def bigquery_target(args: argparse.Namespace) -> BigQueryTarget | None:
    """The target of --sink bigquery (None for the lake); ValueError naming a missing flag."""
    if args.sink != "bigquery":
        return None
    if not args.bq_table:
        raise ValueError("--sink bigquery needs --bq-table PROJECT.DATASET.TABLE")
    return BigQueryTarget(
        table=args.bq_table,
        failed_table=args.bq_failed_table or "",
        endpoint=args.bq_endpoint,
        job_project=args.bq_project or "",
        rows_per_load=args.bq_rows_per_load,
        partition_swap=args.bq_partition_swap,
        staging=getattr(args, "bq_staging", None) or "",
    )


@contextmanager
def staging_folder(
    target: BigQueryTarget | None, beam_args: list[str], lake: str | None = None
) -> Iterator[BigQueryTarget | None]:
    """`target` with a folder to stage batch loads in, for the duration of a run.

    Nothing to choose without a target or with a lake (the lake stages them); else the
    target's own (--bq-staging), else Beam's --temp_location, else a new local
    temporary folder, deleted afterwards.
    """
    if target is None or lake or target.staging:
        yield target
        return
    temp = PipelineOptions(beam_args).view_as(GoogleCloudOptions).temp_location
    if temp:
        yield replace(target, staging=temp)
        return
    with tempfile.TemporaryDirectory(prefix="eventpipe-bq-") as local:
        yield replace(target, staging=local)


def run_to_bigquery_summary(
    target: BigQueryTarget,
    run_id: str,
    beam_args: list[str],
    build: Callable[[beam.Pipeline], None],
    record: dict,
    files: int = 0,
) -> RunSummary:
    """Run a pipeline that writes to `target`; print its summary and record it in BigQuery."""
    summary = run_pipeline(run_id, beam_args, build, files)
    table = record_run(target, run_id, datetime.now(UTC), {**summary.to_dict(), **record})
    for line in summary.lines():
        print(line)
    print(f"  events: {target.table}   failed: {target.failed_table}")
    print(f"  summary recorded in {table}")
    return summary
