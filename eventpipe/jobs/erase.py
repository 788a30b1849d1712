"""`eventpipe erase`: remove every stored trace of a person (the right to erasure).

Order of one erasure, holding the lake's writer lock (docs/erasure.md): the landing log
first (so no later import brings the events back), then the BigQuery tables (a `DELETE`
per affected day), then one lake transaction that replaces the affected partitions of
events, raw and failed and the identity set, then the serving index of the rewritten
days. Every step is idempotent: a run killed anywhere is completed by running it again.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from eventpipe.catalog import Catalog, CatalogError
from eventpipe.identity.store import current_kpid_map, stage_identity_without
from eventpipe.io.erasure import (
    TABLES,
    check_local,
    orphaned_ids,
    profile_ids,
    refresh_indexes,
    stage_table_erasure,
)
from eventpipe.io.erasure_match import ANONYMOUS, KPID, USER, Subjects
from eventpipe.io.erasure_requests import finish_request, id_proofs, pending_requests
from eventpipe.io.lake import EVENTS, FAILED, RAW, write_run_summary
from eventpipe.io.lake_transaction import SUMMARY, LakeTransaction
from eventpipe.io.landing import claim_closed_segments, open_segments, rewrite_landing
from eventpipe.jobs.common import add_wait_argument, new_run_id, run_locked
from eventpipe.jobs.flag_types import non_negative_float
from eventpipe.jobs.sinks import Eraser, add_sink_arguments, bigquery_eraser, open_sink
from eventpipe.listeners.store import LISTENERS_FILE, ListenerStore

log = logging.getLogger("eventpipe.erase")

POLL_SECONDS = 0.2
COUNTED = ("events", "archive", "failed", "landing", "identity", "listeners")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `erase` subcommand."""
    parser = subparsers.add_parser(
        "erase",
        help="erase every stored event and trace of a person (right to erasure)",
        description=(
            "Remove a person's data from the lake: their events (userId or previousId = a "
            "--user-id, anonymousId = an --anonymous-id, kpid = a --kpid), the raw archive of "
            "those events, the failed rows whose raw text carries one of the ids as a JSON "
            "string, their events in the landing log (segments imported and not yet "
            "imported; segments still open are waited for), and the identity graph's rows of "
            "the ids. --kpid erases every id of that profile; --user-id and --anonymous-id "
            "erase exactly the ids given. Without --workspace the WHOLE LAKE is searched (every "
            "workspace); with it, only that workspace's connections. Only the partitions "
            "holding such rows are rewritten, swapped atomically; superseded files are deleted "
            "before the job exits and the serving index of rewritten days is rebuilt. With "
            "--sink bigquery the table and its failed table get a parameterised DELETE per "
            "affected day too. Records counts and keyed hashes of the ids (never the ids) in "
            "LAKE/_runs/. A second run finds nothing (all counts 0)."
        ),
    )
    parser.add_argument("--lake", required=True, help="lake folder (local)")
    ids = parser.add_argument_group("who (repeatable, combinable)")
    ids.add_argument("--user-id", action="append", default=[], metavar="X", help="a userId")
    ids.add_argument(
        "--anonymous-id", action="append", default=[], metavar="Y", help="an anonymousId"
    )
    ids.add_argument(
        "--kpid", action="append", default=[], metavar="K", help="a profile: all its ids"
    )
    parser.add_argument(
        "--workspace",
        metavar="W",
        help="only this workspace's connections (id or slug); default: the whole lake",
    )
    parser.add_argument(
        "--requests",
        action="store_true",
        help="execute the pending requests of the HTTP API (LAKE/_erasures/requests/) instead "
        "of ids given here",
    )
    parser.add_argument(
        "--landing-wait",
        type=non_negative_float,
        default=150.0,
        metavar="SECONDS",
        help="how long to wait for landing segments that collectors are still writing to "
        "close (they close after --landing-segment-seconds, 60 by default); segments still "
        "open then are left and the job exits 1: run it again (default %(default)s)",
    )
    add_wait_argument(parser)
    add_sink_arguments(
        parser,
        sink_help="also erase from BigQuery (--sink bigquery --bq-table ...): a DELETE per "
        "affected day of the event table and of its failed table (default: %(default)s)",
    )
    parser.set_defaults(func=run, _parser=parser)


@dataclass
class Outcome:
    """What one erasure removed, per place, and what it could not finish."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    days: dict[str, list[str]] = field(default_factory=dict)
    bigquery: dict[str, dict[str, int]] = field(default_factory=dict)
    open_segments: int = 0
    profile_ids: int = 0

    def line(self) -> str:
        return "erased: " + ", ".join(f"{k} {v}" for k, v in self.counts.items())

    def to_dict(self) -> dict:
        return {
            "counts": self.counts,
            "days": self.days,
            "bigquery": self.bigquery,
            "open_segments_left": self.open_segments,
            "profile_ids": self.profile_ids,
        }


def _connections(lake: str, workspace: int | str | None) -> frozenset[int] | None:
    if workspace is None:
        return None
    return frozenset(c.id for c in Catalog.in_lake(lake).connections_of(workspace))


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    """Erase; 0 when everything was erased, 1 when something is left (open landing
    segments), 2 on bad flags, 75 when another writer holds the lake."""
    if args.requests == bool(args.user_id or args.anonymous_id or args.kpid):
        args._parser.error("give --user-id/--anonymous-id/--kpid, or --requests")
    if args.requests and args.workspace:
        args._parser.error("--requests takes each request's workspace: no --workspace")
    try:
        check_local(args.lake)
        connections = _connections(args.lake, args.workspace)
    except (ValueError, CatalogError) as exc:
        log.error("%s", exc)
        return 2
    sink = open_sink(args)
    if sink is None:
        return 2
    target = bigquery_eraser(sink)
    run_id = new_run_id(datetime.now(UTC))
    if args.requests:
        body = partial(_run_requests, args, run_id, target)
    else:
        ids = {USER: args.user_id, ANONYMOUS: args.anonymous_id, KPID: args.kpid}
        subjects = Subjects(
            frozenset(args.user_id), frozenset(args.anonymous_id), frozenset(args.kpid), connections
        )
        body = partial(_run_one, args, run_id, target, subjects, ids)
    return run_locked(args.lake, "erase", run_id, args.wait, body)


def _run_one(
    args: argparse.Namespace,
    run_id: str,
    target: Eraser | None,
    subjects: Subjects,
    ids: dict[str, list[str]],
    recovered: list[str],
) -> int:
    started = time.monotonic()
    outcome = erase(args.lake, run_id, subjects, target, args.landing_wait)
    record = {
        "run_id": run_id,
        "job": "erase",
        "workspace": args.workspace,
        "ids": id_proofs(args.lake, ids),
        **outcome.to_dict(),
        "seconds": round(time.monotonic() - started, 2),
        "recovered": recovered,
    }
    path = write_run_summary(args.lake, run_id, record)
    print(outcome.line())
    _report(outcome, path)
    return 1 if outcome.open_segments else 0


def _run_requests(
    args: argparse.Namespace, run_id: str, target: Eraser | None, recovered: list[str]
) -> int:
    requests = pending_requests(args.lake)
    status = 0
    done = []
    for number, request in enumerate(requests):
        try:
            connections = _connections(args.lake, request["workspace"])
        except CatalogError as exc:  # the workspace was deleted meanwhile: nothing of it
            log.error("request %s: %s", request["id"], exc)
            connections = frozenset()
        ids = request["ids"]
        subjects = Subjects(
            frozenset(ids[USER]), frozenset(ids[ANONYMOUS]), frozenset(ids[KPID]), connections
        )
        outcome = erase(args.lake, f"{run_id}-{number}", subjects, target, args.landing_wait)
        if outcome.open_segments:
            status = 1  # the request stays pending: the next run finishes it
            print(f"request {request['id']}: {outcome.line()} (landing segments still open)")
            continue
        finish_request(args.lake, request, {"run_id": run_id, **outcome.to_dict()})
        done.append(request["id"])
        print(f"request {request['id']}: {outcome.line()}")
    LakeTransaction(args.lake, run_id).commit()  # nothing of its own: its staging goes
    record = {"run_id": run_id, "job": "erase", "requests": done, "recovered": recovered}
    path = write_run_summary(args.lake, run_id, record)
    print(f"{len(done)} of {len(requests)} erasure requests done; recorded in {path}")
    return status


def _report(outcome: Outcome, path: str) -> None:
    for table, days in outcome.days.items():
        if days:
            print(f"  {table}: rewrote {', '.join(days)}")
    for table, days in outcome.bigquery.items():
        if days:
            print(f"  {table}: DELETE on {', '.join(days)}")
    if outcome.open_segments:
        print(
            f"  landing: {outcome.open_segments} segments are still being written by a "
            "collector: run erase again once they are closed"
        )
    print(f"  recorded in {path}")


def _expand(lake: str, subjects: Subjects, outcome: Outcome) -> Subjects:
    """With kpids: every id of those profiles (the identity map's and the events')."""
    kpid_map = current_kpid_map(lake).to_pylist()
    if not subjects.kpids:
        given = subjects.user_ids | subjects.anonymous_ids
        kpids = {row["kpid"] for row in kpid_map if row["id"] in given}
        others = {row["id"] for row in kpid_map if row["kpid"] in kpids} - given
        if others:  # a count, never the ids: the output may be logged
            print(
                f"note: the ids given belong to profiles with {len(others)} other ids, "
                "which stay: erase with --kpid to remove whole profiles"
            )
        return subjects
    mapped = [row for row in kpid_map if row["kpid"] in subjects.kpids]
    users, anonymous = profile_ids(lake, subjects)
    users |= {row["id"] for row in mapped if row["kind"] == USER}
    anonymous |= {row["id"] for row in mapped if row["kind"] == ANONYMOUS}
    expanded = subjects.with_ids(users, anonymous)
    outcome.profile_ids = len(expanded.user_ids | expanded.anonymous_ids)
    return expanded


def _settle_landing(lake: str, wait: float) -> int:
    """Close the segments of dead collectors, wait (up to `wait` s) for those that live
    collectors are writing now to close; returns how many are still open."""
    claim_closed_segments(lake)
    writing = set(open_segments(lake))
    deadline = time.monotonic() + wait
    if writing:
        log.info("waiting up to %g s for %d open landing segments to close", wait, len(writing))
    while writing and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        writing &= set(open_segments(lake))
    claim_closed_segments(lake)
    return len(writing)


def erase(
    lake: str, txn_id: str, subjects: Subjects, target: Eraser | None, landing_wait: float
) -> Outcome:
    """One erasure of `subjects` as the lake's writer (call it holding the writer lock)."""
    outcome = Outcome()
    subjects = _expand(lake, subjects, outcome)
    outcome.open_segments = _settle_landing(lake, landing_wait)
    landing = rewrite_landing(lake, subjects.erase_from_envelope, subjects.mentioned_in)
    outcome.counts["landing"] = landing.removed
    outcome.counts["listeners"] = _forget_listened(lake, subjects)
    if target is not None:
        events, failed = target(subjects)
        outcome.bigquery = {events.table: events.days, failed.table: failed.days}
        outcome.counts["events"] += events.removed
        outcome.counts["failed"] += failed.removed
    txn = LakeTransaction.begin(lake, txn_id, "erase")
    names = {EVENTS: "events", RAW: "archive", FAILED: "failed"}
    users, anonymous = orphaned_ids(lake, subjects)  # read before the commit
    for table in TABLES:
        staged = stage_table_erasure(txn, table, subjects)
        outcome.counts[names[table]] += staged.removed
        outcome.days[table] = staged.partitions
    outcome.counts["identity"] = stage_identity_without(txn, users, anonymous)
    txn.record(SUMMARY, {"job": "erase", **outcome.to_dict()})
    txn.commit()
    for note in refresh_indexes(lake, outcome.days[EVENTS]):
        log.info("%s", note)
    return outcome


def _forget_listened(lake: str, subjects: Subjects) -> int:
    """Delete the subjects' events held by event listeners (LAKE/_listeners.sqlite)."""
    connections = subjects.connections

    def owns(event: Any) -> bool:
        mine = connections is None or (
            isinstance(event, dict) and event.get("connectionId") in connections
        )
        return mine and subjects.owns_event(event)

    return ListenerStore(Path(lake) / LISTENERS_FILE).forget(owns)
