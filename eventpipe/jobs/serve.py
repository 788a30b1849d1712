"""`eventpipe serve`: run the read API over a lake (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
from pathlib import Path

from eventpipe.api.limits import (
    DEFAULT_MAX_QUERIES,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_STATEMENT_TIMEOUT,
    ServingLimits,
)
from eventpipe.jobs.flag_types import port_number, positive_float, positive_int

API_KEYS_ENV = "EVENTPIPE_API_KEYS"

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the read API (GET /v1/events, /v1/events/schema) over a lake",
        description="Serve the read API over LAKE/events. API keys come from --api-key "
        f"(repeatable) and the comma-separated environment variable {API_KEYS_ENV}; "
        "clients send them as 'Authorization: Bearer <key>'. OpenAPI docs are at /docs. "
        "Memory (lake backend): the process's baseline (~300 MB, plus the serving index's "
        "per-partition state) plus at most --memory-limit for DuckDB's queries, which run "
        "at most --max-queries at a time; a request stopped by a limit gets a 503.",
    )
    parser.add_argument("--lake", help="the lake folder (holding events/); with --backend lake")
    parser.add_argument(
        "--backend",
        choices=("lake", "bigquery"),
        default="lake",
        help="what to serve: the Parquet lake (--lake) or a BigQuery table (--bq-table); "
        "default %(default)s",
    )
    parser.add_argument(
        "--bq-table", metavar="PROJECT.DATASET.TABLE", help="the event table (--backend bigquery)"
    )
    parser.add_argument(
        "--bq-endpoint",
        metavar="URL",
        help="BigQuery API endpoint (an emulator; anonymous credentials); default: Google's API "
        "with Application Default Credentials",
    )
    parser.add_argument(
        "--memory-limit",
        default=DEFAULT_MEMORY_LIMIT,
        help="DuckDB memory for all running queries together, e.g. 512MB, 2GB (no spilling; "
        "a query that needs more gets a 503); default %(default)s",
    )
    parser.add_argument(
        "--statement-timeout",
        type=positive_float,
        default=DEFAULT_STATEMENT_TIMEOUT,
        metavar="SECONDS",
        help="interrupt a request's queries after this long (503); default %(default)g",
    )
    parser.add_argument(
        "--max-queries",
        type=positive_int,
        default=DEFAULT_MAX_QUERIES,
        help="requests querying the lake at once; others wait up to 3 statement timeouts "
        "for a slot, then get a 503; default %(default)s",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port",
        type=port_number,
        default=8080,
        help="port; 0: a free port, logged at start (default %(default)s)",
    )
    parser.add_argument(
        "--api-key", action="append", default=[], metavar="KEY", help="an accepted API key"
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without authentication (refused otherwise when no key is configured)",
    )
    parser.set_defaults(func=run)


def _log_index_coverage(lake: Path) -> None:
    """Say how many event partitions have a current serving index (json filters use it)."""
    from eventpipe.io.serving_index import event_files, index_is_current

    folders = [f for f in sorted((lake / "events").glob("date=*")) if event_files(f)]
    current = sum(index_is_current(lake, str(f)) for f in folders)
    log.info(
        "%d of %d event partitions have a current serving index%s",
        current,
        len(folders),
        "" if current == len(folders) else " (run eventpipe compact to index the others)",
    )


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    """Start the server; returns when it stops (2 when it cannot start)."""
    import duckdb
    import uvicorn

    from eventpipe.api.app import UVICORN_OPTIONS, create_app
    from eventpipe.api.auth import parse_api_keys

    keys = parse_api_keys([*args.api_key, os.environ.get(API_KEYS_ENV)])
    if not keys and not args.insecure_no_auth:
        log.error(
            "no API key: pass --api-key KEY or set %s (or --insecure-no-auth to serve openly)",
            API_KEYS_ENV,
        )
        return 2
    if args.insecure_no_auth:
        log.warning("serving WITHOUT authentication (--insecure-no-auth)")
    reader = None
    if args.backend == "bigquery":
        from eventpipe.api.bigquery_backend import BigQueryReader

        if not args.bq_table:
            log.error("--backend bigquery needs --bq-table PROJECT.DATASET.TABLE")
            return 2
        reader = BigQueryReader(args.bq_table, args.bq_endpoint)
    elif not args.lake:
        log.error("--lake DIR is required (or --backend bigquery --bq-table ...)")
        return 2
    elif not (Path(args.lake) / "events").is_dir():
        log.warning(
            "%s has no events/ folder yet: lists will be empty until a job writes one", args.lake
        )
    else:
        _log_index_coverage(Path(args.lake))
    limits = ServingLimits(args.memory_limit, args.statement_timeout, args.max_queries)
    try:
        app = create_app(
            args.lake, keys, insecure_no_auth=args.insecure_no_auth, reader=reader, limits=limits
        )
    except duckdb.Error as exc:  # e.g. an unreadable --memory-limit
        log.error("cannot start: %s", exc)
        return 2
    source = args.bq_table if reader else args.lake
    log.info("serving %s on http://%s:%d (docs at /docs)", source, args.host, args.port)
    # The startup's objects (modules, FastAPI, DuckDB, Arrow) leave the garbage collector's
    # generations: its full collections then walk only what requests leave, instead of
    # pausing one request now and then for ~100 ms (the p99 of bench_api's shapes).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", **UVICORN_OPTIONS)
    return 0
