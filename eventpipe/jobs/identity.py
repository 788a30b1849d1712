"""`eventpipe identity`: (re)build the identity graph and re-stitch the kpids of stored events."""

from __future__ import annotations

import argparse
import logging
import time
from datetime import UTC, datetime
from functools import partial

import apache_beam as beam
import duckdb
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from eventpipe.identity import build_identity, identity_connection, write_identity
from eventpipe.io.lake import EVENTS, lake_path, write_run_summary
from eventpipe.io.lake_transaction import LakeTransaction
from eventpipe.jobs.common import add_wait_argument, new_run_id, run_locked
from eventpipe.jobs.summary import EXIT_DAMAGED_INPUT
from eventpipe.pipelines.identity_pipeline import build_restitch_pipeline
from eventpipe.schemas.lake_layout import list_partitions
from eventpipe.schemas.outputs import KPIDS_CHANGED, NAMESPACE, PARTITIONS_REWRITTEN, READ

log = logging.getLogger("eventpipe.identity")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `identity` subcommand."""
    parser = subparsers.add_parser(
        "identity",
        help="rebuild the identity graph (kpids) and re-stitch the stored events",
        description=(
            "Build the identity graph from every stored event (anonymousId+userId links, "
            "aliases; rules in eventpipe.identity.rules), write it to LAKE/identity "
            "(users, anonymous, aliases, conflicts, kpid_map), then give every stored event the "
            "kpid of its profile: partitions whose kpids change are rewritten and swapped in "
            "whole. The build runs in DuckDB within --memory-limit, spilling to disk beyond it. "
            "Run it after imports (imports give new events of known profiles their kpid at once). "
            "Unknown flags are passed to Beam as pipeline options (for the re-stitch)."
        ),
    )
    parser.add_argument("--lake", required=True, help="lake folder (local)")
    parser.add_argument(
        "--memory-limit",
        default="1GB",
        help="DuckDB memory limit of the graph build (default %(default)s; beyond it, it spills)",
    )
    parser.add_argument(
        "--temp-dir", default=None, help="where the build spills (default: a new temporary folder)"
    )
    add_wait_argument(parser)
    parser.set_defaults(func=run, accepts_pipeline_options=True)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Build and write the identity graph, then re-stitch; 0 on success."""
    run_id = new_run_id(datetime.now(UTC))
    if not list_partitions(args.lake, EVENTS):
        log.error("no event partition in %s: import events first", lake_path(args.lake, EVENTS))
        return 2
    body = partial(_build_and_restitch, args, beam_args, run_id)
    return run_locked(args.lake, "identity", run_id, args.wait, body)


def _build_and_restitch(
    args: argparse.Namespace, beam_args: list[str], run_id: str, recovered: list[str]
) -> int:
    started = time.monotonic()
    partitions = [p.name for p in list_partitions(args.lake, EVENTS)]
    con = identity_connection(memory_limit=args.memory_limit, temp_directory=args.temp_dir)
    events = lake_path(args.lake, EVENTS, "date=*", "*.parquet")
    try:
        result = build_identity(con, events)
    except (duckdb.InvalidInputException, duckdb.IOException) as exc:  # a damaged file
        con.close()
        log.error(
            "cannot build the identity graph (nothing was written): %s; restore or remove "
            "the file and run again",
            str(exc).splitlines()[0],
        )
        return EXIT_DAMAGED_INPUT
    graph = LakeTransaction.begin(args.lake, f"{run_id}-graph", "identity")
    generation = write_identity(graph, result)
    graph.commit()
    built = time.monotonic() - started
    con.close()

    pipeline = beam.Pipeline(options=PipelineOptions(beam_args, save_main_session=False))
    build_restitch_pipeline(pipeline, args.lake, run_id, partitions)
    outcome = pipeline.run()
    outcome.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed or c.attempted or 0
        for c in outcome.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    }
    record = {
        "run_id": run_id,
        "job": "identity",
        "generation": generation,
        "graph": result.counts,
        "alias_rounds": result.rounds,
        "build_seconds": round(built, 2),
        "events_read": counters.get(READ, 0),
        "kpids_changed": counters.get(KPIDS_CHANGED, 0),
        "partitions": len(partitions),
        "partitions_rewritten": counters.get(PARTITIONS_REWRITTEN, 0),
        "seconds": round(time.monotonic() - started, 2),
        "recovered": recovered,
    }
    path = write_run_summary(args.lake, run_id, record)
    counts = result.counts
    print(f"identity run {run_id}: {record['seconds']:.1f}s (graph built in {built:.1f}s)")
    print(
        f"  ids: {counts['users']:,} user ids, {counts['anonymous']:,} anonymous ids linked; "
        f"{counts['aliases']:,} aliases; {counts['conflicts']:,} conflicts recorded"
    )
    print(
        f"  events: {record['events_read']:,} read, {record['kpids_changed']:,} got a new kpid; "
        f"{record['partitions_rewritten']} of {len(partitions)} partitions rewritten"
    )
    print(f"  graph: {lake_path(args.lake, 'identity')}   summary recorded in {path}")
    return 0
