"""The `eventpipe` command: one subcommand per job module in `eventpipe.jobs`.

Each job module exposes `register(subparsers)`, which adds its subcommand and
sets `func` (called with the parsed arguments and the list of arguments argparse
did not know, e.g. Beam pipeline options). `func` returns the exit code.

`main` imports only the module of the command it runs (the others are listed by
name and summary): `eventpipe --help` or `eventpipe workspaces list` never pay for
Apache Beam (~1 s of imports), which only the pipeline jobs load.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    # command: (job module, its one-line help as the module registers it; a test checks)
    "import": ("eventpipe.jobs.import_events", "import raw event files into the lake"),
    "reprocess": (
        "eventpipe.jobs.reprocess",
        "re-run the stages over stored date partitions (new GeoIP db, new rules, identities)",
    ),
    "identity": (
        "eventpipe.jobs.identity",
        "rebuild the identity graph (kpids) and re-stitch the stored events",
    ),
    "generate": (
        "eventpipe.jobs.generate",
        "write synthetic raw event files (all input forms, ~3%% invalid) and a manifest",
    ),
    "schema": ("eventpipe.jobs.schema", "print the event schema as JSON"),
    "serve": (
        "eventpipe.jobs.serve",
        "serve the read API (GET /v1/events, /v1/events/schema) over a lake",
    ),
    "compact": (
        "eventpipe.jobs.compact",
        "merge the small files of each date partition of the lake",
    ),
    "stream": ("eventpipe.jobs.stream", "stream events from a Pub/Sub subscription into the lake"),
    "ingest": (
        "eventpipe.jobs.ingest",
        "import the landing log into the lake continuously (seconds after each POST)",
    ),
    "workspaces": (
        "eventpipe.jobs.workspaces",
        "create and list workspaces (a customer's connections, keys and events)",
    ),
    "connections": (
        "eventpipe.jobs.connections",
        "create and list a workspace's connections (the events' connectionId)",
    ),
    "keys": ("eventpipe.jobs.keys", "create, list and revoke event write keys and API keys"),
    "erase": (
        "eventpipe.jobs.erase",
        "erase every stored event and trace of a person (right to erasure)",
    ),
}
JOB_MODULES = tuple(module for module, _ in COMMANDS.values())


def _available(module: str) -> bool:
    """Whether a job module is part of this build (found without importing it)."""
    return importlib.util.find_spec(module) is not None


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every job that can be imported.

    With `load`, only that command's module is imported (the one `main` runs); the
    other commands are listed by name and summary, without their flags.
    """
    parser = argparse.ArgumentParser(
        prog="eventpipe",
        description="Customer-event pipelines on Apache Beam: import raw event batches into a "
        "validated, partitioned Parquet lake, and query it.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command, (name, summary) in COMMANDS.items():
        if not _available(name):
            continue  # a job that is not part of this build
        if load is None or command == load:
            importlib.import_module(name).register(subparsers)
        else:
            subparsers.add_parser(command, help=summary, add_help=False)
    return parser


def _command(argv: list[str]) -> str:
    """The command `argv` names: its first word that is not an option ('' when none)."""
    return next((word for word in argv if not word.startswith("-")), "")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `eventpipe` console script."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(load=_command(argv))
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
