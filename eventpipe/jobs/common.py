"""What the Beam jobs share: enrichment flags, run ids, and running a pipeline to its summary."""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from datetime import date, datetime

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from eventpipe.core.ids import time_ordered_id
from eventpipe.io.lake_lock import EXIT_BUSY, LakeBusy, open_writer, recover_lake, writer_lock
from eventpipe.io.lake_transaction import LakeTransaction
from eventpipe.io.sink import Sink
from eventpipe.jobs.enrich_flags import add_enrich_arguments as add_enrich_arguments
from eventpipe.jobs.enrich_flags import enrich_options as enrich_options
from eventpipe.jobs.flag_types import non_negative_float, positive_int
from eventpipe.jobs.summary import RunSummary, summary_from_metrics

log = logging.getLogger("eventpipe.jobs")

DEFAULT_WAIT_SECONDS = 120.0  # --wait: how long a job waits for another writer by default


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
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help="when another job is writing the lake, wait this long for it to finish (a log "
        "line names it), then exit with code 75; default %(default)g (the continuous "
        "ingester holds the lake a batch at a time: jobs take turns with it); 0: exit at once",
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


LOCAL_SPLIT_BYTES = 256 * 2**20
"""Input over this is imported by one local worker process per core (by default). Each
worker costs ~2 CPU-s to start (Beam and the stages imported and set up again), which
pays off from a few hundred MB (measured: benchmarks/README.md)."""
_LOCAL_MODE_FLAGS = ("--direct_running_mode", "--direct_num_workers")


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """The --workers flag of the batch jobs that run locally."""
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="local run: worker processes of Beam's DirectRunner (1: in this process). Default: "
        f"one per core (os.cpu_count()) when the input is over {LOCAL_SPLIT_BYTES >> 20} MB, "
        "else 1 (starting a worker costs ~2 CPU-s). Ignored when Beam options choose the runner or "
        "its mode (--runner, --direct_running_mode, --direct_num_workers)",
    )


def local_worker_args(beam_args: list[str], workers: int | None, input_bytes: int) -> list[str]:
    """`beam_args` with the local run spread over `workers` processes (None: one per core
    for inputs over LOCAL_SPLIT_BYTES), unless they choose the runner or its mode."""
    if _runner(beam_args) is not None or any(a.startswith(_LOCAL_MODE_FLAGS) for a in beam_args):
        return beam_args
    if workers is None:
        workers = (os.cpu_count() or 1) if input_bytes > LOCAL_SPLIT_BYTES else 1
    if workers <= 1:
        return beam_args
    return [*beam_args, "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]


def _runner(beam_args: list[str]) -> str | None:
    return PipelineOptions(beam_args).view_as(StandardOptions).runner


def run_pipeline(
    run_id: str,
    beam_args: list[str],
    build: Callable[[beam.Pipeline], None],
    files: int = 0,
    streaming: bool = False,
) -> RunSummary:
    """Build and run a pipeline to its end; its summary from the pipeline's counters."""
    started = time.monotonic()
    options = PipelineOptions(beam_args, save_main_session=False)
    # A local batch run goes straight to the FnApiRunner, which the DirectRunner picks
    # for these graphs anyway, after trying to fetch and start Prism (~0.2 s, and a
    # download when online).
    local = not streaming and _runner(beam_args) is None
    pipeline = beam.Pipeline(runner=FnApiRunner() if local else None, options=options)
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
