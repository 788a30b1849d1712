"""`eventpipe schema`: print the event schema document (seed 000's "Get event schema")."""

from __future__ import annotations

import argparse
import json
import sys

from eventpipe.schemas import schema_document


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `schema` subcommand."""
    parser = subparsers.add_parser(
        "schema",
        help="print the event schema as JSON",
        description="Print the event schema as the JSON document of GET /v1/events/schema.",
    )
    parser.add_argument("--compact", action="store_true", help="one line instead of indented")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    """Write the schema document to standard output."""
    json.dump(schema_document(), sys.stdout, indent=None if args.compact else 2)
    sys.stdout.write("\n")
    return 0
