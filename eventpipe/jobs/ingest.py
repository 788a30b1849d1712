"""`eventpipe ingest`: the landing log -> the lake continuously, in micro-batches, exactly once."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from datetime import UTC, date, datetime

from eventpipe.io.compaction import compact_table, new_compaction_id
from eventpipe.io.lake import RAW
from eventpipe.io.lake_lock import open_writer
from eventpipe.io.landing import landing_folder
from eventpipe.jobs import compact
from eventpipe.jobs.common import add_enrich_arguments, enrich_options, new_run_id
from eventpipe.jobs.flag_types import non_negative_float, positive_float
from eventpipe.jobs.summary import RunSummary
from eventpipe.pipelines.ingester import (
    DEFAULT_BATCH_BYTES,
    IngestConfig,
    IngestCounts,
    Ingester,
    run_loop,
)
from eventpipe.schemas.lake_layout import is_remote

log = logging.getLogger("eventpipe.ingest")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `ingest` subcommand."""
    parser = subparsers.add_parser(
        "ingest",
        help="import the landing log into the lake continuously (seconds after each POST)",
        description=(
            "Run until stopped (SIGTERM, SIGINT: the batch under way is finished and committed, "
            "the summary printed, exit 0): every --interval-seconds, take what the collector "
            "has landed in LAKE/landing/ that no run has imported yet (the rest of closed "
            "segments and the complete lines of open ones), run it through the import's "
            "stages (validate, normalise, enrich, failed table, dedupe by messageId, kpids), "
            "and commit it with the offsets read, in one lake transaction: exactly once, "
            "across kills and restarts, and with `eventpipe import --landing`. The writer "
            "lock is held for each batch only, so compact, identity and reprocess take turns "
            "with it. Each batch prints read = written + failed + duplicates and the run's "
            "total; LAKE/_runs/RUN.json holds the run's counts. Each batch adds one file per "
            "day it writes: --compact-minutes folds them back (docs/ingest.md)."
        ),
    )
    parser.add_argument("--lake", required=True, help="the lake folder (local) of the collector")
    parser.add_argument(
        "--interval-seconds",
        type=positive_float,
        default=1.0,
        help="start a batch this often (default %(default)g); a batch never holds the lake "
        "longer than it takes",
    )
    parser.add_argument(
        "--max-batch-mb",
        type=positive_float,
        default=DEFAULT_BATCH_BYTES / 2**20,
        help="most landing bytes one batch reads (default %(default)g); more waits for the "
        "next batch",
    )
    parser.add_argument(
        "--compact-minutes",
        type=non_negative_float,
        default=10.0,
        help="every this many minutes, compact (and index for the read API) the days the "
        "batches wrote to since (`eventpipe compact --from D --to D`); 0: never (run "
        "`eventpipe compact` on a schedule instead); default %(default)g",
    )
    parser.add_argument(
        "--landing-retention",
        choices=("keep", "delete"),
        default="keep",
        help="segments read to their end are moved to LAKE/landing/imported/ (keep) or "
        "deleted; default %(default)s",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="import everything landed so far (closed and open segments), then exit",
    )
    add_enrich_arguments(parser)
    parser.set_defaults(func=run)


class _Compaction:
    """Compacts the days the batches wrote to, every `minutes` (the compact job itself)."""

    def __init__(self, lake: str, minutes: float) -> None:
        self.lake = lake
        self.seconds = minutes * 60
        self.days: set[str] = set()
        self.last = time.monotonic()

    def __call__(self) -> None:
        if not self.seconds or not self.days or time.monotonic() - self.last < self.seconds:
            return
        days = sorted(date.fromisoformat(d.removeprefix("date=")) for d in self.days)
        self.days.clear()
        args = argparse.Namespace(
            lake=self.lake, table="both", first=days[0], last=days[-1], dry_run=False,
            no_index=False, wait=None,
        )  # fmt: skip
        log.info("compacting %s..%s: the days written since the last compaction", days[0], days[-1])
        compact.run(args, [])
        # raw/ too (`eventpipe compact` leaves it to reprocess): a file per batch otherwise
        compaction_id = new_compaction_id()
        with open_writer(self.lake, "compact", compaction_id, wait=None):
            report = compact_table(self.lake, compaction_id, RAW, days[0], days[-1])
        print(report.line())
        self.last = time.monotonic()


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    """Ingest until stopped (or, with --once, until the landing log is drained)."""
    if is_remote(args.lake):
        log.error("the landing log is local: --lake must be a local folder")
        return 2
    try:
        enrich = enrich_options(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    run_start = datetime.now(UTC)
    run_id = new_run_id(run_start)
    config = IngestConfig(
        lake=args.lake,
        run_id=run_id,
        run_start=run_start,
        enrich=enrich,
        keep_segments=args.landing_retention == "keep",
        max_batch_bytes=int(args.max_batch_mb * 2**20),
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "run %s: ingesting %s every %g s into %s",
        run_id, landing_folder(args.lake), args.interval_seconds, args.lake,
    )  # fmt: skip
    ingester = Ingester(config)
    compaction = _Compaction(args.lake, args.compact_minutes)
    started = time.monotonic()

    def on_batch(counts: IngestCounts) -> None:
        compaction.days.update(ingester.days_written)
        ingester.days_written.clear()
        total = ingester.totals
        log.info(
            "batch %d: %s, %d segments done; run total: %s",
            total.batches, equation(counts), counts.segments, equation(total),
        )  # fmt: skip

    try:
        run_loop(ingester, stop, args.interval_seconds, args.once, on_batch, compaction)
    finally:
        ingester.close()
    totals = ingester.totals
    where = ingester.record("finished")
    summary = run_summary(run_id, totals, time.monotonic() - started)
    print(f"run {run_id}: {totals.batches:,} batches, {totals.bytes / 1e6:.1f} MB of landing")
    for line in summary.lines():
        print(line)
    print(f"  summary recorded in {where}")
    return summary.exit_code()


def run_summary(run_id: str, counts: IngestCounts, seconds: float = 0.0) -> RunSummary:
    """The counts of an ingest run (or batch) as every job's summary (files: segments done)."""
    return RunSummary(
        run_id, counts.read, counts.written, counts.failed, counts.duplicates,
        dict(counts.failed_by_reason), files=counts.segments, seconds=seconds,
    )  # fmt: skip


def equation(counts: IngestCounts) -> str:
    """`read R = written W + failed F + duplicates D [OK]`, as every job prints it."""
    return " ".join(run_summary("", counts).lines()[1].split())


if __name__ == "__main__":
    from eventpipe.jobs.cli import main

    sys.exit(main(["ingest", *sys.argv[1:]]))
