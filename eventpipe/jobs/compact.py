"""`eventpipe compact`: rewrite each date partition's many small files as one (or a few)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date

from eventpipe.io.compaction import (
    MAX_FILE_ROWS,
    TABLES,
    CompactionError,
    compact_lake,
    lake_exists,
    new_compaction_id,
)
from eventpipe.io.lake import EVENTS
from eventpipe.io.lake_lock import EXIT_BUSY, LakeBusy, open_writer
from eventpipe.jobs.common import add_wait_argument
from eventpipe.schemas.lake_layout import is_remote
from eventpipe.serving.index_build import INDEX, index_lake

log = logging.getLogger("eventpipe.compact")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `compact` subcommand."""
    parser = subparsers.add_parser(
        "compact",
        help="merge the small files of each date partition of the lake",
        description=(
            "Rewrite every LAKE/<table>/date=D partition that has more than one Parquet file as "
            f"one file (several of at most {MAX_FILE_ROWS:,} rows for bigger partitions), sorted "
            "by timestamp (events) or receivedAt (failed), with the import's writer settings. "
            "Safe to interrupt: the next run finishes or discards what an interrupted one left. "
            "Readers may see a partition's rows twice for the instant between the new file's "
            "rename and the old files' deletion. Runs on the machine that starts it, one "
            "partition in memory at a time. Then (local lakes) builds the read API's serving "
            f"index (LAKE/{INDEX}/events/date=D/) of every event partition whose index is "
            "missing or older than its files (the rows in newest-first order, json values and "
            "userId/anonymousId/session id -> rows, and a row store of small zstd blocks from which "
            "scattered rows are read fast; together ~3x the partition's Parquet size): json "
            "property and user filters and unfiltered pages then read only the rows they "
            "return; an unindexed or changed partition is simply scanned."
        ),
    )
    parser.add_argument("--lake", required=True, help="lake folder or URL")
    parser.add_argument(
        "--table",
        choices=[*TABLES, "both"],
        default="both",
        help="table to compact (default: %(default)s)",
    )
    parser.add_argument(
        "--from", dest="first", type=_day, metavar="YYYY-MM-DD", help="first date (inclusive)"
    )
    parser.add_argument(
        "--to", dest="last", type=_day, metavar="YYYY-MM-DD", help="last date (inclusive)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be done, change nothing"
    )
    parser.add_argument(
        "--no-index",
        action="store_true",
        help="do not build the read API's serving index (json filters then scan)",
    )
    add_wait_argument(parser)
    parser.set_defaults(func=run, _parser=parser)


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    """Compact the lake; 0 when every partition in range ends compacted, 1 when some failed."""
    if args.first and args.last and args.first > args.last:
        args._parser.error("--from is after --to")
    if not lake_exists(args.lake):
        print(f"eventpipe compact: no lake at {args.lake}", file=sys.stderr)
        return 2
    compaction_id = new_compaction_id()
    try:
        with open_writer(args.lake, "compact", compaction_id, args.wait, args.dry_run) as notes:
            return _compact(args, compaction_id, notes)
    except LakeBusy as exc:
        print(f"eventpipe compact: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except CompactionError as exc:
        print(f"eventpipe compact: {exc}", file=sys.stderr)
        return 2


def _compact(args: argparse.Namespace, compaction_id: str, recovered: list[str]) -> int:
    tables = TABLES if args.table == "both" else (args.table,)
    started = time.monotonic()
    reports = compact_lake(
        args.lake, tables, args.first, args.last, args.dry_run, log.info, compaction_id
    )
    for note in recovered:
        print(note)
    for report in reports:
        print(report.line(args.dry_run))
        for error in report.errors:
            print(f"  failed: {error}")
    failed = any(r.errors for r in reports)
    if EVENTS in tables and not args.no_index and not is_remote(args.lake):
        index = index_lake(args.lake, args.first, args.last, args.dry_run, progress=log.info)
        print(index.line(args.dry_run))
        for error in index.errors:
            print(f"  failed: {error}")
        failed = failed or bool(index.errors)
    if not args.dry_run:
        print(f"  {time.monotonic() - started:.1f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    from eventpipe.jobs.cli import main

    sys.exit(main(["compact", *sys.argv[1:]]))
