"""What `eventpipe workspaces|connections|keys` share: a command of actions, each with
--lake and --json, the catalog's refusals as exit code 2, and printing objects as a table
or as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from eventpipe.catalog import Catalog, CatalogError

CatalogAction = Callable[[Catalog, argparse.Namespace], int]


def add_catalog_command(
    subparsers: argparse._SubParsersAction, name: str, summary: str, description: str
) -> argparse._SubParsersAction:
    """The subcommand `name`, whose actions (create, list...) are added to the result."""
    parser = subparsers.add_parser(name, help=summary, description=description)
    return parser.add_subparsers(dest="action", metavar="ACTION", required=True)


def add_catalog_action(
    actions: argparse._SubParsersAction,
    name: str,
    summary: str,
    json_help: str,
    action: CatalogAction,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """The action `name` with --lake and --json, running `action` on the lake's catalog."""
    parser = actions.add_parser(name, help=summary, description=description or summary)
    parser.add_argument(
        "--lake", required=True, help="the lake folder; its catalog is DIR/_catalog.sqlite"
    )
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.set_defaults(func=catalog_job(action))
    return parser


def add_workspace_argument(parser: argparse.ArgumentParser) -> None:
    """--workspace W, an id or a slug."""
    parser.add_argument(
        "--workspace", required=True, metavar="W", help="the workspace's id or slug"
    )


def catalog_job(action: CatalogAction) -> Callable[[argparse.Namespace, list[str]], int]:
    """A job's `func`: runs `action` on the lake's catalog; a refusal is exit code 2."""

    def run(args: argparse.Namespace, _extra: list[str]) -> int:
        try:
            return action(Catalog.in_lake(args.lake), args)
        except CatalogError as exc:
            print(f"eventpipe {args.command}: error: {exc}", file=sys.stderr)
            return 2

    return run


def print_objects(objects: Sequence[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    """One JSON object per line with --json, else a table of `columns` with a header."""
    if as_json:
        for obj in objects:
            print(json.dumps(obj))
        return
    rows = [[_cell(obj.get(c)) for c in columns] for obj in objects]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    for row in [list(columns), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    return str(value)
