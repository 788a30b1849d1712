"""The `eventpipe` command: one subcommand per job module in `eventpipe.jobs`.

Each job module exposes `register(subparsers)`, which adds its subcommand and
sets `func` (called with the parsed arguments and the list of arguments argparse
did not know, e.g. Beam pipeline options). `func` returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

JOB_MODULES = (
    "eventpipe.jobs.import_events",
    "eventpipe.jobs.reprocess",
    "eventpipe.jobs.identity",
    "eventpipe.jobs.generate",
    "eventpipe.jobs.schema",
    "eventpipe.jobs.serve",
    "eventpipe.jobs.compact",
    "eventpipe.jobs.stream",
    "eventpipe.jobs.workspaces",
    "eventpipe.jobs.connections",
    "eventpipe.jobs.keys",
    "eventpipe.jobs.erase",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every job that can be imported."""
    parser = argparse.ArgumentParser(
        prog="eventpipe",
        description="Customer-event pipelines on Apache Beam: import raw event batches into a "
        "validated, partitioned Parquet lake, and query it.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in JOB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a job that is not part of this build
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `eventpipe` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("apache_beam").setLevel(logging.WARNING)
    if extra and not getattr(args, "accepts_pipeline_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return int(args.func(args, extra) or 0)


if __name__ == "__main__":
    sys.exit(main())
