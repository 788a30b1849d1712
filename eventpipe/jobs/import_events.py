"""`eventpipe import`: raw event files -> the Parquet lake (batch, any Beam runner)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from datetime import UTC, datetime
from functools import partial

from eventpipe.io.lake import STAGING, lake_path
from eventpipe.io.lake_sink import dedupe_buckets
from eventpipe.io.landing import claim_closed_segments, retire_segments, stage_done_ledger
from eventpipe.io.raw_files import (
    CHUNK_BYTES,
    NoInputError,
    expand_patterns,
    unsplittable_input,
)
from eventpipe.io.sink import CommitFiles, Sink
from eventpipe.jobs.common import (
    add_enrich_arguments,
    add_wait_argument,
    add_workers_argument,
    enrich_options,
    local_worker_args,
    new_run_id,
    run_locked,
    run_to_summary,
)
from eventpipe.jobs.flag_types import positive_float
from eventpipe.jobs.ingest import equation
from eventpipe.jobs.sinks import add_sink_arguments, open_sink, sink_from_flags
from eventpipe.jobs.summary import RunSummary
from eventpipe.pipelines.import_pipeline import ImportConfig, build_import_pipeline
from eventpipe.pipelines.ingester import IngestConfig, Ingester
from eventpipe.transforms.enrich import EnrichOptions

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
            "LAKE/failed (Parquet, partitioned by date=YYYY-MM-DD). Events are unique by "
            "(connectionId, messageId): copies within the run and copies of events the lake "
            "already holds are counted as duplicates and not written. Each stored event is also "
            "archived as parsed in LAKE/raw, for `eventpipe reprocess`. New events of known "
            "profiles get their kpid from LAKE/identity (see `eventpipe identity`). Prints and "
            "records (LAKE/_runs/RUN.json) read = written + failed + duplicates; exits 1 when they differ, 3 when a file was damaged or unreadable (failed reason invalid_file). Unknown flags are passed to Beam as "
            "pipeline options, e.g. --runner DataflowRunner, --direct_num_workers 2, "
            "--direct_running_mode multi_processing, --setup_file ./setup.py. Locally, an input "
            "over 256 MB is imported by one worker process per core (see --workers), and an "
            "uncompressed .jsonl/.ndjson file is read in byte ranges that the workers share "
            "(a .gz file cannot be split: one worker reads it)."
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="PATH_OR_GLOB", help="event files to import")
    parser.add_argument(
        "--landing",
        action="store_true",
        help="import the closed segments of the lake's landing log (LAKE/landing/, written by "
        "the collector) instead of files: each exactly once, marked done by the run's commit; "
        "segments still being written are left for the next run (docs/collector.md)",
    )
    parser.add_argument(
        "--landing-retention",
        choices=("keep", "delete"),
        default="keep",
        help="what becomes of imported segments: moved to LAKE/landing/imported/ (keep) or "
        "deleted; default %(default)s",
    )
    parser.add_argument(
        "--lake",
        help="lake folder or URL (created when missing); required with --sink lake (with "
        "--sink bigquery: kpids are stitched from its identity map, and the loaded events are "
        "archived in its raw/ for `eventpipe reprocess`)",
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
        type=positive_float,
        default=CHUNK_BYTES / 2**20,
        help="MB of raw records each worker validates at once, as one Arrow table "
        "(default %(default)s; bigger chunks cost less per event and more memory)",
    )
    add_workers_argument(parser)
    add_wait_argument(parser)
    add_enrich_arguments(parser)
    add_sink_arguments(parser)
    parser.set_defaults(func=run, accepts_pipeline_options=True, print_usage=parser.print_usage)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Run one import; the exit code is 0 when every record is accounted for and every file
    was read whole, 1 when records are unaccounted for, 3 when files were damaged."""
    run_start = datetime.now(UTC)
    run_id = new_run_id(run_start)
    if args.landing:
        return _run_landing(args, beam_args, run_id, run_start)
    try:
        if not args.inputs:
            args.print_usage(sys.stderr)
            raise ValueError("give the files to import (or --landing)")
        files = expand_patterns(args.inputs)
        enrich = enrich_options(args)
    except (NoInputError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    sink = open_sink(args)
    if sink is None:
        return 2
    total = sum(size for _, size in files)
    log.info(
        "run %s: importing %d files (%.1f MB) into %s",
        run_id, len(files), total / 1e6, sink.describe(),
    )  # fmt: skip
    if note := unsplittable_input(files):
        log.warning("%s", note)
    beam_args = local_worker_args(beam_args, args.workers, total)

    def run_import(recovered: list[str]) -> int:
        with sink.for_run(beam_args) as run_sink:
            summary = _run_import(
                args, beam_args, files, run_id, run_start, enrich, run_sink, recovered
            )
        return summary.exit_code()

    if not args.lake:
        return run_import([])
    return run_locked(args.lake, "import", run_id, args.wait, run_import, sink.recover)


def _run_import(
    args: argparse.Namespace,
    beam_args: list[str],
    files: list[tuple[str, int]],
    run_id: str,
    run_start: datetime,
    enrich: EnrichOptions | None,
    sink: Sink,
    recovered: list[str],
    commit_with: CommitFiles = (),
    landing: dict | None = None,
) -> RunSummary:
    total = sum(size for _, size in files)
    config = ImportConfig(
        files=files,
        sink=sink,
        identity=args.lake or None,  # (a BigQuery import without --lake has no identity map)
        run_id=run_id,
        run_start=run_start,
        default_connection=args.connection_id,
        chunk_bytes=int(args.chunk_mb * 2**20),
        dedupe_buckets=dedupe_buckets(total),
        enrich=enrich,
        commit_with=commit_with,
    )
    build = partial(build_import_pipeline, config=config)
    record = {"job": "import", "inputs": args.inputs, "recovered": recovered}
    if landing is not None:
        record["landing"] = landing
    return run_to_summary(sink, run_id, beam_args, build, record, files=len(files))


def _run_landing(
    args: argparse.Namespace, beam_args: list[str], run_id: str, run_start: datetime
) -> int:
    """Import the closed landing segments; their ledger is committed with the events."""
    if args.inputs or not args.lake or "://" in args.lake or args.sink != "lake":
        log.error("--landing imports LAKE/landing/ of a local --lake into it, and takes no files")
        return 2
    enrich = enrich_options(args)
    keep = args.landing_retention == "keep"

    def run_import(recovered: list[str]) -> int:
        claimed = claim_closed_segments(args.lake)
        retire_segments(args.lake, claimed.done, keep)  # a committed run imported them
        for note in claimed.torn:
            log.warning("landing: %s", note)
        landing = {
            "segments": [os.path.basename(p) for p in claimed.paths],
            "writers_gone": claimed.recovered,
            "torn": claimed.torn,
        }
        print(
            f"landing: {len(claimed.paths)} closed segments to import, "
            f"{len(claimed.done)} already imported, {len(claimed.torn)} torn last lines skipped"
        )
        if claimed.partial:
            _finish_partial(args.lake, run_id, run_start, enrich, keep, claimed.partial)
        staging = lake_path(args.lake, STAGING, run_id)
        if not claimed.paths:
            shutil.rmtree(staging, ignore_errors=True)  # nothing staged: no run to recover
            return 0
        ledger = stage_done_ledger(args.lake, staging, run_id, claimed.paths)
        files = [(p, os.path.getsize(p)) for p in claimed.paths]
        local_args = local_worker_args(beam_args, args.workers, sum(n for _, n in files))
        summary = _run_import(
            args,
            local_args,
            files,
            run_id,
            run_start,
            enrich,
            sink_from_flags(args),
            recovered,
            (ledger,),
            landing,
        )
        retire_segments(args.lake, claimed.paths, keep)
        return summary.exit_code()

    return run_locked(args.lake, "import", run_id, args.wait, run_import)


def _finish_partial(
    lake: str,
    run_id: str,
    run_start: datetime,
    enrich: EnrichOptions | None,
    keep: bool,
    paths: list[str],
) -> None:
    """Import the rest of the segments `eventpipe ingest` has read in part, as it does (from
    their committed offsets, in its transactions): never the same bytes twice."""
    names = {os.path.basename(p) for p in paths}
    print(f"landing: {len(names)} segments partly imported by `eventpipe ingest`: their rest")
    config = IngestConfig(lake, f"{run_id}-rest", run_start, enrich, keep)
    ingester = Ingester(config)
    try:
        while ingester.run_batch(only=names) is not None:
            pass
    finally:
        ingester.close()
    print(f"  {equation(ingester.totals)}")
    print(f"  summary recorded in {ingester.record('finished')}")


if __name__ == "__main__":
    from eventpipe.jobs.cli import main

    sys.exit(main(["import", *sys.argv[1:]]))
