"""`eventpipe connections create|list`: a workspace's source connections (docs/workspaces.md)."""

from __future__ import annotations

import argparse

from eventpipe.catalog import Catalog
from eventpipe.jobs.catalog_output import add_catalog_arguments, catalog_job, print_objects

COLUMNS = ("id", "workspace", "name", "created")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `connections` subcommand."""
    parser = subparsers.add_parser(
        "connections",
        help="create and list a workspace's connections (the events' connectionId)",
        description="A connection is a source of events (a website, an app, a server). Its "
        "id, a random int32 unique in the lake, is the connectionId of the events it sends, "
        "and names exactly one workspace.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a connection and print it")
    add_catalog_arguments(create, "print it as one JSON object: id, workspace, name")
    _add_workspace_argument(create)
    create.add_argument("--name", help="a display name")
    create.set_defaults(func=catalog_job(create_connection))
    listing = actions.add_parser("list", help="list a workspace's connections")
    add_catalog_arguments(listing, "one JSON object per line")
    _add_workspace_argument(listing)
    listing.set_defaults(func=catalog_job(list_connections))


def _add_workspace_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace", required=True, metavar="W", help="the workspace's id or slug"
    )


def create_connection(catalog: Catalog, args: argparse.Namespace) -> int:
    """Create the connection and print it."""
    connection = catalog.create_connection(args.workspace, args.name)
    print_objects([connection.to_json()], args.json, COLUMNS)
    return 0


def list_connections(catalog: Catalog, args: argparse.Namespace) -> int:
    """Print the workspace's connections."""
    connections = catalog.connections_of(args.workspace)
    print_objects([c.to_json() for c in connections], args.json, COLUMNS)
    return 0
