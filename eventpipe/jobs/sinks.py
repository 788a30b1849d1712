"""The sink flags of the jobs that write events (import, reprocess, stream, erase): flags -> `Sink`."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from functools import partial

from eventpipe.io.bigquery.erase import BigQueryErasure, erase_from_bigquery
from eventpipe.io.bigquery.sink import BigQuerySink
from eventpipe.io.bigquery.tables import FLUSH_ROWS, BigQueryTarget
from eventpipe.io.erasure_match import Subjects
from eventpipe.io.lake_target import LakeSink
from eventpipe.io.sink import Sink, SinkError
from eventpipe.jobs.flag_types import positive_int

log = logging.getLogger("eventpipe.jobs")

SINKS = ("lake", "bigquery")

Eraser = Callable[[Subjects], tuple[BigQueryErasure, BigQueryErasure]]
"""Deletes erasure subjects' rows from a sink's event and failed tables (what each lost)."""


def add_sink_arguments(parser: argparse.ArgumentParser, sink_help: str | None = None) -> None:
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


def sink_from_flags(args: argparse.Namespace) -> Sink:
    """The sink the flags ask for; ValueError naming a missing or bad flag."""
    if args.sink == "lake":
        if not args.lake:
            raise ValueError("--lake DIR is required (or --sink bigquery --bq-table ...)")
        return LakeSink(args.lake)
    if not args.bq_table:
        raise ValueError("--sink bigquery needs --bq-table PROJECT.DATASET.TABLE")
    target = BigQueryTarget(
        table=args.bq_table,
        failed_table=args.bq_failed_table or "",
        endpoint=args.bq_endpoint,
        job_project=args.bq_project or "",
        rows_per_load=args.bq_rows_per_load,
        partition_swap=args.bq_partition_swap,
        staging=getattr(args, "bq_staging", None) or "",
    )
    return BigQuerySink(target, args.lake or None)


def open_sink(args: argparse.Namespace) -> Sink | None:
    """The sink of the flags, prepared (each change it made logged); None, with the error
    logged, when a flag is missing or the sink cannot take the rows (the job exits 2)."""
    try:
        sink = sink_from_flags(args)
        for message in sink.prepare():
            log.info("%s", message)
    except (ValueError, SinkError) as exc:
        log.error("%s", exc)
        return None
    return sink


def bigquery_eraser(sink: Sink) -> Eraser | None:
    """For a BigQuery sink, what deletes the erasure subjects' rows from its tables (`erase`);
    None for the lake, whose erasure is the lake's own."""
    if not isinstance(sink, BigQuerySink):
        return None
    return partial(erase_from_bigquery, sink.target)
