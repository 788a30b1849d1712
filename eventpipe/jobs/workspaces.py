"""`eventpipe workspaces create|list`: the lake's workspaces (docs/workspaces.md)."""

from __future__ import annotations

import argparse

from eventpipe.catalog import Catalog
from eventpipe.jobs.catalog_output import add_catalog_arguments, catalog_job, print_objects

COLUMNS = ("id", "slug", "name", "projectKey", "created")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `workspaces` subcommand."""
    parser = subparsers.add_parser(
        "workspaces",
        help="create and list workspaces (a customer's connections, keys and events)",
        description="A workspace owns connections and keys; every event belongs to one "
        "workspace through its connectionId. Other commands name a workspace by its id or "
        "slug. The catalog is the SQLite file LAKE/_catalog.sqlite, created on first use.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a workspace and print it")
    add_catalog_arguments(create, "print it as one JSON object: id, name, slug, projectKey")
    create.add_argument("--name", required=True, help="a display name")
    create.add_argument(
        "--slug", help="the short name other commands may use (default: from the name)"
    )
    create.set_defaults(func=catalog_job(create_workspace))
    listing = actions.add_parser("list", help="list the workspaces")
    add_catalog_arguments(listing, "one JSON object per line")
    listing.set_defaults(func=catalog_job(list_workspaces))


def create_workspace(catalog: Catalog, args: argparse.Namespace) -> int:
    """Create the workspace and print it."""
    workspace = catalog.create_workspace(args.name, args.slug)
    print_objects([workspace.to_json()], args.json, COLUMNS)
    return 0


def list_workspaces(catalog: Catalog, args: argparse.Namespace) -> int:
    """Print every workspace."""
    print_objects([w.to_json() for w in catalog.workspaces()], args.json, COLUMNS)
    return 0
