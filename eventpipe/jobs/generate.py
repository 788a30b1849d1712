"""`eventpipe generate`: write a directory of realistic raw event files and their manifest."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from eventpipe.jobs.flag_types import positive_int
from eventpipe.sample import DEFAULT_BASE_DATE, MANIFEST, generate

_DESCRIPTION = f"""\
Write N read units of synthetic raw event input to DIR, deterministic for a seed.

Files (~20-40k read units each, fewer for small runs) mix every input form:
  collector-NNNNN.jsonl[.gz]  landing envelopes {{receivedAt, ip, connectionId, body: batch}}
  batches-NNNNN.jsonl         bare batch documents {{connectionId, batch, context, sentAt}}
  export-NNNNN.json           one JSON array of events (each with connectionId, sentAt,
                              receivedAt)
  events-NNNNN.ndjson         one such event per line

About 3% of the read units are invalid, covering every failure reason, and ~1%
are duplicates (repeated lines, re-sent messageIds). A read unit is an event of a
record that parses, or a record rejected as a whole; the run writes exactly N.
DIR/{MANIFEST} lists the exact expected counts: records, read_units,
expected_valid, expected_failed_by_reason, duplicates and the same per file.
"""


def _date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date: {text!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `generate` subcommand."""
    parser = subparsers.add_parser(
        "generate",
        help="write synthetic raw event files (all input forms, ~3%% invalid) and a manifest",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=positive_int, required=True, metavar="N",
                        help="read units to write (exact)")  # fmt: skip
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed: same seed, same bytes (default 0)")  # fmt: skip
    parser.add_argument("--base-date", type=_date, default=DEFAULT_BASE_DATE, metavar="DATE",
                        help="events fall in the DAYS before this UTC date "
                        "(default 2026-11-01)")  # fmt: skip
    parser.add_argument("--days", type=positive_int, default=30,
                        help="length of the time window (default 30)")  # fmt: skip
    parser.add_argument("--events-per-file", type=positive_int, default=None, metavar="K",
                        help="read units per file (default: N/20, between 20 and 40000)")  # fmt: skip
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="processes writing files in parallel (default: CPU count); "
                        "the output does not depend on it")  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    """Generate the files and print a summary."""
    manifest = generate(args.out, args.events, seed=args.seed, base_date=args.base_date,
                        days=args.days, units_per_file=args.events_per_file,
                        workers=args.workers)  # fmt: skip
    print(summary(manifest, args.out))
    return 0


def summary(m: dict[str, Any], out: str) -> str:
    """A human-readable summary of a generation run."""
    forms = ", ".join(f"{n} {form}" for form, n in m["files_by_form"].items())
    failed = ", ".join(f"{r}={n}" for r, n in m["expected_failed_by_reason"].items())
    return (
        f"wrote {m['file_count']} files to {out} ({forms})\n"
        f"  {m['records']} records, {m['read_units']} read units, {m['events']} events\n"
        f"  expected valid {m['expected_valid']} (incl. {m['duplicates']} duplicates), "
        f"invalid {m['expected_failed']}: {failed}\n"
        f"  seed {m['seed']}, {m['days']} days before {m['base_date']}, "
        f"{m.get('seconds', 0):.1f} s; manifest {MANIFEST}"
    )
