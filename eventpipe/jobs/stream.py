"""`eventpipe stream`: Pub/Sub -> the Parquet lake, continuously (windowed, deduplicated)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import signal
import sys
from datetime import UTC, datetime
from types import FrameType

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from eventpipe.io.beam_compat import local_streaming_runner
from eventpipe.io.lake_target import LakeSink
from eventpipe.io.pubsub import LocalReadSettings, ReadPubSubMessages, request_stop
from eventpipe.jobs.common import (
    add_enrich_arguments,
    enrich_options,
    new_run_id,
    prepare_lake,
    run_to_summary,
)
from eventpipe.jobs.flag_types import non_negative_float, positive_float, positive_int
from eventpipe.jobs.sinks import add_sink_arguments, open_sink
from eventpipe.pipelines.stream_pipeline import (
    LOCAL_RUNNER,
    StreamConfig,
    build_stream_pipeline,
)

log = logging.getLogger("eventpipe.stream")

LOCAL_RUNNERS = {None, "DirectRunner", "SwitchingDirectRunner", LOCAL_RUNNER}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `stream` subcommand."""
    parser = subparsers.add_parser(
        "stream",
        help="stream events from a Pub/Sub subscription into the lake",
        description=(
            "Read landing envelopes or raw batches from a Pub/Sub subscription (attributes "
            "receivedAt, ip and connectionId fill the envelope of a raw batch; else the publish "
            "time is receivedAt), run the import's parse/validate/normalise/enrich stages, set "
            "kpid from LAKE/identity/kpid_map.parquet, drop redelivered events (connectionId, "
            "messageId) and write Parquet files per fixed window of the event timestamp into "
            "LAKE/events/date=D (late events, whose window had closed, as further files of their "
            "own day, counted 'late'; failed records into LAKE/failed/date=D). Stops on SIGINT/SIGTERM (or --stop-after-idle) by draining: "
            "every open window is written, then the summary read = written + failed + "
            "duplicates is printed and recorded in LAKE/_runs/RUN.json. Runs locally on Beam's "
            "streaming DirectRunner; unknown flags go to Beam (e.g. --runner DataflowRunner "
            "--project P --region R --temp_location gs://...; drain Dataflow jobs with "
            "`gcloud dataflow jobs drain`)."
        ),
    )
    parser.add_argument(
        "--subscription", required=True, help="projects/P/subscriptions/S to read from"
    )
    parser.add_argument("--lake", required=True, help="lake folder or URL (created when missing)")
    add_sink_arguments(
        parser,
        sink_help="where events go: lake/events, or a BigQuery table through the insert API "
        "(--bq-table); failed records and run summaries stay in the lake (default: %(default)s)",
    )
    parser.add_argument(
        "--window-seconds",
        type=positive_int,
        default=60,
        help="fixed event-time window of the files, in seconds; must divide a day "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--allowed-lateness",
        type=non_negative_float,
        default=300.0,
        help="seconds after a window's end during which its rows are kept in window state and "
        "written as further files of that window; only bounds that state: events published "
        "later are late, and still written, once, as further files of their own day's "
        "partition, counted 'late' (default %(default)s)",
    )
    parser.add_argument(
        "--max-event-age",
        type=parse_age,
        default=None,
        metavar="AGE",
        help="opt-in upper bound on event age: an event whose timestamp is more than AGE "
        "(seconds, or a number with s, m, h or d: 30d) before its message was published goes "
        "to the failed table with reason 'too_old' (default: no bound, every event is written)",
    )
    parser.add_argument(
        "--dedupe-seconds",
        type=positive_float,
        default=600.0,
        help="how long (stream time) an event's (connectionId, messageId) is remembered to "
        "drop redeliveries (default %(default)s)",
    )
    parser.add_argument(
        "--shards",
        type=positive_int,
        default=4,
        help="state shards of dedupe and writers: files per window (default %(default)s)",
    )
    parser.add_argument(
        "--kpid-refresh-seconds",
        type=positive_float,
        default=300.0,
        help="re-read LAKE/identity/kpid_map.parquet when it changed, at most this often "
        "(stream time; default %(default)s)",
    )
    parser.add_argument(
        "--dead-letter-topic",
        default=None,
        help="projects/P/topics/T: also publish every failed row there, as JSON",
    )
    parser.add_argument(
        "--connection-id",
        type=int,
        default=None,
        help="connection of events whose envelope, attributes, batch and event carry none",
    )
    parser.add_argument("--run-id", default=None, help="run id (default: time + random)")
    local = parser.add_argument_group("local runs (DirectRunner)")
    local.add_argument(
        "--stop-after-idle",
        type=positive_float,
        default=None,
        help="drain and stop after this many seconds without a message (tests, benchmarks)",
    )
    local.add_argument(
        "--max-messages",
        type=positive_int,
        default=1000,
        help="messages per Pub/Sub pull (default %(default)s)",
    )
    add_enrich_arguments(parser)
    parser.set_defaults(func=run, accepts_pipeline_options=True)


AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_age(text: str) -> float:
    """An age flag value in seconds: `90`, `90s`, `15m`, `12h`, `30d` (argparse type)."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in AGE_UNITS else (text, "s")
    try:
        seconds = float(number) * AGE_UNITS[unit]
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"not a positive age (e.g. 3600, 90m, 12h, 30d): {text!r}")
    return seconds


def _streaming_args(beam_args: list[str]) -> tuple[list[str], bool]:
    """Beam arguments for a streaming run, and whether it runs on the local runner."""
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner
    local = runner in LOCAL_RUNNERS
    if local:
        beam_args = [*beam_args, f"--runner={LOCAL_RUNNER}"]
    return [*beam_args, "--streaming"], local


def _install_stop_handlers(stop_key: str) -> None:
    def stop(signum: int, _frame: FrameType | None) -> None:
        log.warning(
            "%s: draining (open windows are written, then the job stops)",
            signal.Signals(signum).name,
        )
        request_stop(stop_key)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Run the streaming job until it is stopped; exit code 0 when every record is accounted for."""
    if 86_400 % args.window_seconds:
        log.error("--window-seconds %d does not divide a day", args.window_seconds)
        return 2
    sink = open_sink(args)
    if sink is None:
        return 2
    run_start = datetime.now(UTC)
    run_id = args.run_id or new_run_id(run_start)
    config = StreamConfig(
        subscription=args.subscription,
        lake=args.lake,
        run_id=run_id,
        run_start=run_start,
        sink=sink,
        default_connection=args.connection_id,
        enrich=enrich_options(args),
        window_s=args.window_seconds,
        allowed_lateness_s=args.allowed_lateness,
        max_event_age_s=args.max_event_age,
        dedupe_expiry_s=args.dedupe_seconds,
        shards=args.shards,
        kpid_refresh_s=args.kpid_refresh_seconds,
        dead_letter_topic=args.dead_letter_topic,
    )
    beam_args, local = _streaming_args(beam_args)
    settings = LocalReadSettings(
        stop_key=run_id, max_messages=args.max_messages, idle_stop_seconds=args.stop_after_idle
    )

    def build(pipeline: beam.Pipeline) -> None:
        messages = pipeline | "ReadPubSub" >> ReadPubSubMessages(
            args.subscription, settings if local else None
        )
        build_stream_pipeline(messages, config)

    prepare_lake(args.lake, run_id)
    log.info("run %s: streaming %s into %s", run_id, args.subscription, sink.describe())
    record = {"subscription": args.subscription}
    _install_stop_handlers(run_id)
    with local_streaming_runner() if local else contextlib.nullcontext():
        summary = run_to_summary(  # failed rows and run summaries stay in the lake
            LakeSink(args.lake), run_id, beam_args, build, record, streaming=True
        )
    return 0 if summary.reconciles else 1


if __name__ == "__main__":
    from eventpipe.jobs.cli import main

    sys.exit(main(["stream", *sys.argv[1:]]))
