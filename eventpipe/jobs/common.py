"""What the Beam jobs share: enrichment flags, run ids, and running a pipeline to its summary."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from datetime import date, datetime

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from eventpipe.core.ids import time_ordered_id
from eventpipe.io.lake_lock import EXIT_BUSY, LakeBusy, open_writer, recover_lake, writer_lock
from eventpipe.io.lake_transaction import LakeTransaction
from eventpipe.io.sink import Sink
from eventpipe.jobs.enrich_flags import add_enrich_arguments as add_enrich_arguments
from eventpipe.jobs.enrich_flags import enrich_options as enrich_options
from eventpipe.jobs.flag_types import non_negative_float
from eventpipe.jobs.summary import RunSummary, summary_from_metrics

log = logging.getLogger("eventpipe.jobs")


def parse_day(text: str) -> date:
    """A YYYY-MM-DD flag value (argparse type)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def new_run_id(now: datetime) -> str:
    """A run's id: sorts in start order (see `core.ids.time_ordered_id`)."""
    return time_ordered_id(now)


def add_wait_argument(parser: argparse.ArgumentParser) -> None:
    """The --wait flag of the jobs that write a lake."""
    parser.add_argument(
        "--wait",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="when another job is writing the lake, wait this long for it to finish "
        f"(default %(default)s: exit at once with code {EXIT_BUSY}, naming that job)",
    )


def run_locked(
    lake: str,
    job: str,
    run_id: str,
    wait: float,
    body: Callable[[list[str]], int],
    before_recovery: Callable[[], list[str]] | None = None,
) -> int:
    """Run `body(recovery notes)` as the lake's only writer: lock, (`before_recovery`,)
    recover, begin the lake transaction `run_id`. Exit code EXIT_BUSY when another writer
    holds the lake beyond `wait` seconds (or a committed transaction of another host may be
    applying)."""
    try:
        with writer_lock(lake, job, run_id, wait):
            notes = before_recovery() if before_recovery else []
            notes += recover_lake(lake, run_id)
            for note in notes:
                log.warning("%s", note)
            LakeTransaction.begin(lake, run_id, job)  # its writers stage files into it
            return body(notes)
    except LakeBusy as exc:
        log.error("%s", exc)
        return EXIT_BUSY


def prepare_lake(lake: str, run_id: str, job: str = "stream") -> None:
    """Finish or clean up what dead runs left (holding the writer lock meanwhile, waiting
    for it as long as it takes): for a writer that takes the lock only around its commits
    (the streaming job: a transaction per window file)."""
    with open_writer(lake, job, run_id, wait=None) as notes:
        for note in notes:
            log.warning("%s", note)


def run_pipeline(
    run_id: str,
    beam_args: list[str],
    build: Callable[[beam.Pipeline], None],
    files: int = 0,
    streaming: bool = False,
) -> RunSummary:
    """Build and run a pipeline to its end; its summary from the pipeline's counters."""
    started = time.monotonic()
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args, save_main_session=False))
    build(pipeline)
    result = pipeline.run()
    result.wait_until_finish()
    summary = summary_from_metrics(result, run_id, streaming)
    summary.files = files
    summary.seconds = time.monotonic() - started
    return summary


def run_to_summary(
    sink: Sink,
    run_id: str,
    beam_args: list[str],
    build: Callable[[beam.Pipeline], None],
    record: dict,
    files: int = 0,
    streaming: bool = False,
) -> RunSummary:
    """Build and run a pipeline that writes to `sink`, then print its summary and record
    it through the sink (the lake's `_runs/<run>.json`, BigQuery's `eventpipe_runs`)."""
    summary = run_pipeline(run_id, beam_args, build, files, streaming)
    where = sink.record_run(run_id, {**summary.to_dict(), **record})
    for line in summary.lines():
        print(line)
    print(f"  {sink.outputs()}")
    print(f"  summary recorded in {where}")
    return summary
