"""`eventpipe connections create|list`: a workspace's source connections (docs/workspaces.md)."""

from __future__ import annotations

import argparse

from eventpipe.catalog import Catalog
from eventpipe.jobs.catalog_cli import (
    add_catalog_action,
    add_catalog_command,
    add_workspace_argument,
    print_objects,
)

COLUMNS = ("id", "workspace", "name", "created")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `connections` subcommand."""
    actions = add_catalog_command(
        subparsers,
        "connections",
        "create and list a workspace's connections (the events' connectionId)",
        "A connection is a source of events (a website, an app, a server). Its id, a random "
        "int32 unique in the lake, is the connectionId of the events it sends, and names "
        "exactly one workspace.",
    )
    create = add_catalog_action(
        actions,
        "create",
        "create a connection and print it",
        "print it as one JSON object: id, workspace, name",
        create_connection,
    )
    add_workspace_argument(create)
    create.add_argument("--name", help="a display name")
    create.add_argument(
        "--id",
        type=int,
        help="use this connection id (1 to 2^31-1) instead of a random one: for events "
        "already in the lake, imported with their connectionId; refused when taken",
    )
    listing = add_catalog_action(
        actions,
        "list",
        "list a workspace's connections",
        "one JSON object per line",
        list_connections,
    )
    add_workspace_argument(listing)


def create_connection(catalog: Catalog, args: argparse.Namespace) -> int:
    """Create the connection and print it."""
    connection = catalog.create_connection(args.workspace, args.name, args.id)
    print_objects([connection.to_json()], args.json, COLUMNS)
    return 0


def list_connections(catalog: Catalog, args: argparse.Namespace) -> int:
    """Print the workspace's connections."""
    connections = catalog.connections_of(args.workspace)
    print_objects([c.to_json() for c in connections], args.json, COLUMNS)
    return 0
