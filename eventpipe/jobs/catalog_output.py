"""What `eventpipe workspaces|connections|keys` share: the lake and --json arguments,
the catalog errors as exit code 2, and printing objects as a table or as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from eventpipe.catalog import Catalog, CatalogError

CatalogAction = Callable[[Catalog, argparse.Namespace], int]


def add_catalog_arguments(parser: argparse.ArgumentParser, json_help: str) -> None:
    """--lake (the catalog's folder) and --json."""
    parser.add_argument(
        "--lake", required=True, help="the lake folder; its catalog is DIR/_catalog.sqlite"
    )
    parser.add_argument("--json", action="store_true", help=json_help)


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
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for row in [list(columns), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    return str(value)
