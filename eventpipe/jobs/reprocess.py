"""`eventpipe reprocess`: re-run validate/normalise/enrich/stitch over stored date partitions."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from functools import partial

from eventpipe.io.lake import RAW
from eventpipe.io.lake_sink import dedupe_buckets
from eventpipe.io.sink import Sink
from eventpipe.jobs.common import (
    add_enrich_arguments,
    add_wait_argument,
    enrich_options,
    new_run_id,
    parse_day,
    run_locked,
    run_to_summary,
)
from eventpipe.jobs.sinks import add_sink_arguments, open_sink
from eventpipe.pipelines.reprocess_pipeline import ReprocessConfig, build_reprocess_pipeline
from eventpipe.schemas.lake_layout import list_partitions
from eventpipe.transforms.enrich import EnrichOptions

log = logging.getLogger("eventpipe.reprocess")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `reprocess` subcommand."""
    parser = subparsers.add_parser(
        "reprocess",
        help="re-run the stages over stored date partitions (new GeoIP db, new rules, identities)",
        description=(
            "Re-run validate, normalise, enrich and kpid stitching over the events of the date "
            "partitions FROM..TO (inclusive, UTC dates of the events' timestamp), starting from "
            "the raw archive LAKE/raw, and replace each partition (events and raw) whole and "
            "atomically. Run it after a new GeoIP database, new rules, or `eventpipe identity`. "
            "Re-running it with the same inputs gives the same rows. Events the current rules "
            "reject move to LAKE/failed. Prints and records read = written + failed + "
            "duplicates. Unknown flags are passed to Beam as pipeline options."
        ),
    )
    parser.add_argument("--lake", required=True, help="lake folder or URL")
    parser.add_argument("--from", dest="first", type=parse_day, required=True, metavar="YYYY-MM-DD")
    parser.add_argument("--to", dest="last", type=parse_day, required=True, metavar="YYYY-MM-DD")
    add_wait_argument(parser)
    add_enrich_arguments(parser)
    add_sink_arguments(
        parser,
        sink_help="where the reprocessed days go: the lake's partitions, or the BigQuery table's "
        "day partitions (--bq-table; the raw archive is still read from --lake)",
    )
    parser.set_defaults(func=run, accepts_pipeline_options=True)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Run one reprocess; the exit code is 0 when every archived event is accounted for."""
    if args.last < args.first:
        log.error("--to %s is before --from %s", args.last, args.first)
        return 2
    try:
        enrich = enrich_options(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    sink = open_sink(args)
    if sink is None:
        return 2
    run_start = datetime.now(UTC)
    run_id = new_run_id(run_start)
    body = partial(_reprocess, args, beam_args, run_id, run_start, enrich, sink)
    return run_locked(args.lake, "reprocess", run_id, args.wait, body)


def _reprocess(
    args: argparse.Namespace,
    beam_args: list[str],
    run_id: str,
    run_start: datetime,
    enrich: EnrichOptions | None,
    sink: Sink,
    recovered: list[str],
) -> int:
    partitions = list_partitions(args.lake, RAW, args.first, args.last)
    if not partitions:
        log.warning("no raw partition between %s and %s: nothing to do", args.first, args.last)
    files = [path for part in partitions for path in part.files]
    size = sum(part.total_bytes() for part in partitions)
    log.info(
        "run %s: reprocessing %d partitions (%d archive files, %.1f MB) of %s",
        run_id, len(partitions), len(files), size / 1e6, args.lake,
    )  # fmt: skip
    config = ReprocessConfig(
        sink=sink,
        identity=args.lake,
        run_id=run_id,
        run_start=run_start,
        partitions=tuple(part.name for part in partitions),
        raw_files=tuple(files),
        enrich=enrich,
        dedupe_buckets=dedupe_buckets(size * 8),  # archives compress raw text ~8x
    )
    build = partial(build_reprocess_pipeline, config=config)
    record = {"job": "reprocess", "from": str(args.first), "to": str(args.last)}
    record["recovered"] = recovered
    summary = run_to_summary(sink, run_id, beam_args, build, record, files=len(files))
    return 0 if summary.reconciles else 1
