"""`eventpipe workspaces create|list`: the lake's workspaces (docs/workspaces.md)."""

from __future__ import annotations

import argparse

from eventpipe.catalog import Catalog
from eventpipe.jobs.catalog_cli import add_catalog_action, add_catalog_command, print_objects

COLUMNS = ("id", "slug", "name", "projectKey", "created")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `workspaces` subcommand."""
    actions = add_catalog_command(
        subparsers,
        "workspaces",
        "create and list workspaces (a customer's connections, keys and events)",
        "A workspace owns connections and keys; every event belongs to one workspace "
        "through its connectionId. Other commands name a workspace by its id or slug. The "
        "catalog is the SQLite file LAKE/_catalog.sqlite, created on first use.",
    )
    create = add_catalog_action(
        actions,
        "create",
        "create a workspace and print it",
        "print it as one JSON object: id, name, slug, projectKey",
        create_workspace,
    )
    create.add_argument("--name", required=True, help="a display name")
    create.add_argument(
        "--slug", help="the short name other commands may use (default: from the name)"
    )
    add_catalog_action(
        actions, "list", "list the workspaces", "one JSON object per line", list_workspaces
    )


def create_workspace(catalog: Catalog, args: argparse.Namespace) -> int:
    """Create the workspace and print it."""
    workspace = catalog.create_workspace(args.name, args.slug)
    print_objects([workspace.to_json()], args.json, COLUMNS)
    return 0


def list_workspaces(catalog: Catalog, args: argparse.Namespace) -> int:
    """Print every workspace."""
    print_objects([w.to_json() for w in catalog.workspaces()], args.json, COLUMNS)
    return 0
