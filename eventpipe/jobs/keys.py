"""`eventpipe keys create|list|revoke`: event write keys and API keys (docs/workspaces.md)."""

from __future__ import annotations

import argparse
import sys

from eventpipe.catalog import API_SCOPES, Catalog
from eventpipe.jobs.catalog_cli import (
    add_catalog_action,
    add_catalog_command,
    add_workspace_argument,
    print_objects,
)

CREATED_COLUMNS = ("id", "kind", "scope", "workspace", "connection", "key")
LISTED_COLUMNS = ("id", "kind", "prefix", "scope", "workspace", "connection", "created", "revoked")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `keys` subcommand."""
    actions = add_catalog_command(
        subparsers,
        "keys",
        "create, list and revoke event write keys and API keys",
        "An event write key (--connection) may only send events, which get its connection's "
        "id. An API key (--scope) is bound to a workspace: read (query endpoints), write "
        "(ingestion with a connectionId of the workspace), admin. A key's secret is printed "
        "once, at creation; the catalog keeps only its SHA-256.",
    )
    create = add_catalog_action(
        actions,
        "create",
        "create a key and print its secret (shown only this once)",
        "print it as one JSON object: id, key (the secret), scope, workspace, connection",
        create_key,
        description="Create an event write key (--connection C) or an API key (--scope, "
        "repeatable) of workspace W, and print it with its secret.",
    )
    add_workspace_argument(create)
    bound = create.add_mutually_exclusive_group(required=True)
    bound.add_argument(
        "--connection", type=int, metavar="C", help="an event write key for connection C of W"
    )
    bound.add_argument(
        "--scope",
        action="append",
        choices=API_SCOPES,
        help="an API key of W with this scope (repeatable)",
    )
    listing = add_catalog_action(
        actions,
        "list",
        "list a workspace's keys (never their secrets)",
        "one JSON object per line",
        list_keys,
    )
    add_workspace_argument(listing)
    revoke = add_catalog_action(
        actions,
        "revoke",
        "revoke a key: it never authenticates again",
        "print the revoked key as one JSON object",
        revoke_key,
    )
    revoke.add_argument("key_id", type=int, metavar="KEY_ID", help="the key's id (see keys list)")
    revoke.add_argument(
        "--workspace", metavar="W", help="refuse unless the key is of workspace W (id or slug)"
    )


def create_key(catalog: Catalog, args: argparse.Namespace) -> int:
    """Create the key and print it with its secret."""
    if args.connection is not None:
        new = catalog.create_write_key(args.workspace, args.connection)
    else:
        new = catalog.create_api_key(args.workspace, args.scope)
    print_objects([new.to_json()], args.json, CREATED_COLUMNS)
    if not args.json:
        print("The key is shown only now: the catalog keeps only its hash.", file=sys.stderr)
    return 0


def list_keys(catalog: Catalog, args: argparse.Namespace) -> int:
    """Print the workspace's keys, revoked ones included."""
    keys = catalog.keys_of(args.workspace)
    print_objects([k.to_json() for k in keys], args.json, LISTED_COLUMNS)
    return 0


def revoke_key(catalog: Catalog, args: argparse.Namespace) -> int:
    """Revoke the key and print it."""
    key = catalog.revoke_key(args.key_id, args.workspace)
    print_objects([key.to_json()], args.json, LISTED_COLUMNS)
    return 0
