"""`eventpipe import`: raw event files -> the Parquet lake (batch, any Beam runner)."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import time
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from eventpipe.io.bigquery import (
    IncompatibleTableError,
    prepare_tables,
    record_run,
)
from eventpipe.io.lake import (
    lake_path,
    mark_running,
    recover_abandoned_runs,
    write_run_summary,
)
from eventpipe.io.lake_sink import dedupe_buckets
from eventpipe.io.raw_files import CHUNK_BYTES, NoInputError, expand_patterns
from eventpipe.jobs.bigquery_options import add_bigquery_arguments, bigquery_target
from eventpipe.jobs.summary import summary_from_metrics
from eventpipe.pipelines.import_pipeline import ImportConfig, build_import_pipeline
from eventpipe.transforms.enrich import IP_POLICIES, EnrichOptions

log = logging.getLogger("eventpipe.import")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `import` subcommand."""
    parser = subparsers.add_parser(
        "import",
        help="import raw event files into the lake",
        description=(
            "Read raw event batches (JSON, JSONL/NDJSON, optionally gzip; local paths, globs or "
            "any Beam filesystem URL such as gs://), validate and normalise every event, and "
            "write the valid ones to LAKE/events and every rejected record, with its reason, to "
            "LAKE/failed (Parquet, partitioned by date=YYYY-MM-DD). Prints and records "
            "(LAKE/_runs/RUN.json) read = written + failed. Unknown flags are passed to Beam as "
            "pipeline options, e.g. --runner DataflowRunner, --direct_num_workers 2, "
            "--direct_running_mode multi_processing, --setup_file ./setup.py."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="PATH_OR_GLOB", help="event files to import")
    parser.add_argument(
        "--lake", help="lake folder or URL (created when missing); required with --sink lake"
    )
    parser.add_argument(
        "--connection-id",
        type=int,
        default=None,
        help="connection of events whose envelope, batch and event carry no connectionId "
        "(without it such events are rejected)",
    )
    parser.add_argument(
        "--chunk-mb",
        type=float,
        default=CHUNK_BYTES / 2**20,
        help="MB of raw records each worker validates at once, as one Arrow table "
        "(default %(default)s; bigger chunks cost less per event and more memory)",
    )
    enrich = parser.add_argument_group("enrichment")
    enrich.add_argument(
        "--geoip-db",
        default=None,
        help="MaxMind City database (GeoLite2-City or GeoIP2-City .mmdb; any Beam path) for "
        "context.location; default: the GeoLite2 City database bundled with the package",
    )
    enrich.add_argument(
        "--ip-policy",
        choices=IP_POLICIES,
        default="keep",
        help="what is stored of context.ip after geolocation: keep it, mask it (IPv4 last octet, "
        "IPv6 last 80 bits) or drop it (default: keep)",
    )
    enrich.add_argument(
        "--drop-bots",
        action="store_true",
        help="do not write events from bots and crawlers to the event table; they go to the "
        "failed table with reason 'bot' (without this flag they are kept, with "
        "context.device.type = 'bot')",
    )
    enrich.add_argument(
        "--no-enrich",
        action="store_true",
        help="skip enrichment: store events as validated and normalised (browser, OS, "
        "location and campaign only when the events carry them)",
    )
    add_bigquery_arguments(parser)
    parser.set_defaults(func=run, accepts_pipeline_options=True)


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Run one import; the exit code is 0 when every record is accounted for."""
    started = time.monotonic()
    run_start = datetime.now(UTC)
    run_id = new_run_id(run_start)
    try:
        files = expand_patterns(args.inputs)
        target = bigquery_target(args)
        if target is None and not args.lake:
            raise ValueError("--lake DIR is required (or --sink bigquery --bq-table ...)")
    except (NoInputError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    total = sum(size for _, size in files)
    log.info(
        "run %s: importing %d files (%.1f MB) into %s",
        run_id, len(files), total / 1e6, target.table if target else args.lake,
    )  # fmt: skip
    if target is not None:
        try:
            for message in prepare_tables(target):
                log.info("%s", message)
        except IncompatibleTableError as exc:
            log.error("%s", exc)
            return 2
    else:
        for message in recover_abandoned_runs(args.lake):
            log.warning("%s", message)
        mark_running(args.lake, run_id)
    config = ImportConfig(
        files=[path for path, _ in files],
        lake=args.lake or "",
        run_id=run_id,
        run_start=run_start,
        default_connection=args.connection_id,
        chunk_bytes=int(args.chunk_mb * 2**20),
        dedupe_buckets=dedupe_buckets(total),
        enrich=None
        if args.no_enrich
        else EnrichOptions(
            geoip_db=args.geoip_db, ip_policy=args.ip_policy, drop_bots=args.drop_bots
        ).check(),
        bigquery=target,
    )
    options = PipelineOptions(beam_args, save_main_session=False)
    pipeline = beam.Pipeline(options=options)
    build_import_pipeline(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    summary = summary_from_metrics(result, run_id)
    summary.files = len(files)
    summary.seconds = time.monotonic() - started
    if target is not None:
        record = record_run(
            target, run_id, datetime.now(UTC), {**summary.to_dict(), "inputs": args.inputs}
        )
        where = f"  events: {target.table}   failed: {target.failed_table}"
    else:
        record = write_run_summary(args.lake, run_id, {**summary.to_dict(), "inputs": args.inputs})
        where = (
            f"  events: {lake_path(args.lake, 'events')}   failed: {lake_path(args.lake, 'failed')}"
        )
    for line in summary.lines():
        print(line)
    print(where)
    print(f"  summary recorded in {record}")
    return 0 if summary.reconciles else 1


if __name__ == "__main__":
    sys.exit(run(*argparse.ArgumentParser().parse_known_args()))
