"""`eventpipe keys create|list|revoke`: event write keys and API keys (docs/workspaces.md)."""

from __future__ import annotations

import argparse
import sys

from eventpipe.catalog import API_SCOPES, Catalog
from eventpipe.jobs.catalog_output import add_catalog_arguments, catalog_job, print_objects

CREATED_COLUMNS = ("id", "kind", "scope", "workspace", "connection", "key")
LISTED_COLUMNS = ("id", "kind", "prefix", "scope", "workspace", "connection", "created", "revoked")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `keys` subcommand."""
    parser = subparsers.add_parser(
        "keys",
        help="create, list and revoke event write keys and API keys",
        description="An event write key (--connection) may only send events, which get its "
        "connection's id. An API key (--scope) is bound to a workspace: read (query "
        "endpoints), write (ingestion with a connectionId of the workspace), admin. A key's "
        "secret is printed once, at creation; the catalog keeps only its SHA-256.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create a key and print its secret (shown only this once)",
        description="Create an event write key (--connection C) or an API key (--scope, "
        "repeatable) of workspace W, and print it with its secret.",
    )
    add_catalog_arguments(
        create, "print it as one JSON object: id, key (the secret), scope, workspace, connection"
    )
    create.add_argument(
        "--workspace", required=True, metavar="W", help="the workspace's id or slug"
    )
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
    create.set_defaults(func=catalog_job(create_key))
    listing = actions.add_parser("list", help="list a workspace's keys (never their secrets)")
    add_catalog_arguments(listing, "one JSON object per line")
    listing.add_argument(
        "--workspace", required=True, metavar="W", help="the workspace's id or slug"
    )
    listing.set_defaults(func=catalog_job(list_keys))
    revoke = actions.add_parser("revoke", help="revoke a key: it never authenticates again")
    add_catalog_arguments(revoke, "print the revoked key as one JSON object")
    revoke.add_argument("key_id", type=int, metavar="KEY_ID", help="the key's id (see keys list)")
    revoke.set_defaults(func=catalog_job(revoke_key))


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
    key = catalog.revoke_key(args.key_id)
    print_objects([key.to_json()], args.json, LISTED_COLUMNS)
    return 0
