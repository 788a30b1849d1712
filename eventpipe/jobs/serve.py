"""`eventpipe serve`: run the read API and the collector over a lake (uvicorn)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import socket
from pathlib import Path

from eventpipe.api.limits import (
    DEFAULT_MAX_QUERIES,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_STATEMENT_TIMEOUT,
    ServingLimits,
)
from eventpipe.catalog import Catalog, CatalogError
from eventpipe.collector.requests import Limits
from eventpipe.collector.server import CollectorConfig
from eventpipe.io.landing import DEFAULT_SEGMENT_BYTES, DEFAULT_SEGMENT_SECONDS
from eventpipe.jobs.enrich_flags import add_enrich_arguments
from eventpipe.jobs.flag_types import port_number, positive_float, positive_int
from eventpipe.listeners.store import DEFAULT_IDLE_SECONDS
from eventpipe.schemas.lake_layout import is_remote

API_KEYS_ENV = "EVENTPIPE_API_KEYS"

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the read API (GET /v1/events, /v1/events/schema) over a lake",
        description="Serve the read API over LAKE/events. Keys are the workspace catalog's "
        "(LAKE/_catalog.sqlite, or --catalog; see docs/workspaces.md): each key reads its "
        "own workspace's events only. Legacy keys from --api-key (repeatable) and the "
        f"comma-separated environment variable {API_KEYS_ENV} read the whole lake (the "
        "single-workspace shortcut). Clients send 'Authorization: Bearer <key>'. "
        "OpenAPI docs are at /docs. "
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
        "--port-file",
        metavar="PATH",
        help="write the port the server bound to this file (with --port 0: the kernel's choice)",
    )
    add_collector_arguments(parser)
    add_listener_arguments(parser)
    parser.add_argument(
        "--catalog",
        metavar="FILE",
        help="the workspace catalog file (default: LAKE/_catalog.sqlite); e.g. "
        "the lake's catalog when serving --backend bigquery",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without authentication (refused otherwise when no key is configured)",
    )
    parser.set_defaults(func=run)


def add_collector_arguments(parser: argparse.ArgumentParser) -> None:
    """The collector's flags (docs/collector.md)."""
    group = parser.add_argument_group("collector (POST /v1/events, /v1/events/{type}, /v1/track)")
    group.add_argument(
        "--role",
        choices=("all", "read", "collector"),
        default="all",
        help="serve the read API and the collector (all), or one of them; default %(default)s "
        "(the collector authenticates against LAKE/_catalog.sqlite)",
    )
    group.add_argument(
        "--landing",
        choices=("file", "pubsub"),
        default="file",
        help="where accepted requests land before the answer: LAKE/landing/ segments (file) "
        "or a Pub/Sub topic (--topic); default %(default)s",
    )
    group.add_argument("--topic", metavar="projects/P/topics/T", help="with --landing pubsub")
    group.add_argument(
        "--landing-segment-seconds",
        type=positive_float,
        default=DEFAULT_SEGMENT_SECONDS,
        help="close a landing segment this long after opening it, even when idle "
        "(default %(default)g)",
    )
    group.add_argument(
        "--landing-segment-bytes",
        type=positive_int,
        default=DEFAULT_SEGMENT_BYTES,
        help="... or once it holds this many bytes (default %(default)s)",
    )
    limits = (
        ("--max-body-bytes", Limits.max_body_bytes, "largest request body, else 413"),
        ("--max-events", Limits.max_events, "most events in one request, else 413"),
        ("--max-depth", Limits.max_depth, "deepest nesting of a request body, else 400"),
        ("--max-pending-bytes", Limits.max_pending_bytes, "bodies held at once, else 503"),
    )
    for flag, default, text in limits:
        group.add_argument(
            flag, type=positive_int, default=default, help=text + " (default %(default)s)"
        )
    group.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="a proxy whose X-Forwarded-For is believed (repeatable); otherwise the client "
        "address is the connection's peer",
    )
    group.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="worker processes (--role collector only; they share the port and the landing "
        "log, each with its own segments); default %(default)s",
    )


def add_listener_arguments(parser: argparse.ArgumentParser) -> None:
    """The event listeners' flags (docs/listeners.md): their idle time, and the import's
    enrichment flags, which say what listeners show (pass the import's own)."""
    group = parser.add_argument_group(
        "event listeners (/v1/events/listeners)",
        "The enrichment flags below say what listeners show: pass the import's own.",
    )
    group.add_argument(
        "--listener-idle-seconds",
        type=positive_float,
        default=DEFAULT_IDLE_SECONDS,
        help="remove a listener nobody created or read for this long (default %(default)g)",
    )
    add_enrich_arguments(parser)


def collector_config(args: argparse.Namespace) -> CollectorConfig:
    """The collector's settings from the flags (ValueError naming a bad one)."""
    return CollectorConfig(
        lake=args.lake or "",
        landing=args.landing,
        topic=args.topic,
        segment_seconds=args.landing_segment_seconds,
        segment_bytes=args.landing_segment_bytes,
        max_body_bytes=args.max_body_bytes,
        max_events=args.max_events,
        max_depth=args.max_depth,
        max_pending_bytes=args.max_pending_bytes,
        trusted_proxies=list(args.trusted_proxy),
        listener_geoip_db=args.geoip_db,
        listener_ip_policy=args.ip_policy,
        listener_drop_bots=args.drop_bots,
        listener_no_enrich=args.no_enrich,
    ).check()


def _log_index_coverage(lake: Path) -> None:
    """Say how many event partitions have a current serving index (json filters use it)."""
    from eventpipe.serving.index_build import event_files, index_is_current

    folders = [f for f in sorted((lake / "events").glob("date=*")) if event_files(f)]
    current = sum(index_is_current(lake, str(f)) for f in folders)
    log.info(
        "%d of %d event partitions have a current serving index%s",
        current,
        len(folders),
        "" if current == len(folders) else " (run eventpipe compact to index the others)",
    )


def _catalog(args: argparse.Namespace) -> Catalog | None:
    """The catalog of --catalog (which must exist), else of a local lake (None for a
    remote one). A lake's catalog may not exist yet: keys created later work at once."""
    if args.catalog:
        if not Path(args.catalog).is_file():
            raise CatalogError(f"no catalog file {args.catalog}")
        return Catalog(args.catalog)
    if args.lake and "://" not in args.lake:
        return Catalog.in_lake(args.lake)
    return None


def run(args: argparse.Namespace, _extra: list[str]) -> int:
    """Start the server; returns when it stops (2 when it cannot start)."""
    import duckdb

    from eventpipe.api.app import UVICORN_OPTIONS, create_app
    from eventpipe.api.auth import parse_api_keys

    if args.backend == "bigquery" and not args.bq_table:
        log.error("--backend bigquery needs --bq-table PROJECT.DATASET.TABLE")
        return 2
    collector = None
    if args.role != "read":
        try:
            if not args.lake:
                raise ValueError(
                    "the collector needs --lake DIR (its catalog and landing log); "
                    "--role read serves the read API alone"
                )
            collector = collector_config(args)
        except ValueError as exc:
            log.error("%s", exc)
            return 2
    if args.workers > 1 and args.role != "collector":
        log.error("--workers N runs collector-only servers: add --role collector")
        return 2
    if args.role == "collector":
        return _serve_collector(args, collector)
    keys = parse_api_keys([*args.api_key, os.environ.get(API_KEYS_ENV)])
    try:
        catalog = _catalog(args)
    except CatalogError as exc:
        log.error("cannot start: %s", exc)
        return 2
    if catalog is not None and catalog.path.is_file():
        log.info("keys from the workspace catalog %s", catalog.path)
    elif not keys and not args.insecure_no_auth:
        log.error(
            "no key: create one in the lake's catalog (eventpipe keys create), or pass "
            "--api-key KEY or set %s (or --insecure-no-auth to serve openly)",
            API_KEYS_ENV,
        )
        return 2
    if keys:
        log.info("%d legacy API key(s) read the whole lake", len(keys))
    if args.insecure_no_auth:
        log.warning("serving WITHOUT authentication (--insecure-no-auth)")
    reader = None
    if args.backend == "bigquery":
        from eventpipe.api.bigquery_backend import BigQueryReader

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
            args.lake,
            keys,
            insecure_no_auth=args.insecure_no_auth,
            reader=reader,
            limits=limits,
            catalog=catalog,
        )
    except duckdb.Error as exc:  # e.g. an unreadable --memory-limit
        log.error("cannot start: %s", exc)
        return 2
    if collector is not None:
        from eventpipe.collector.app import install_collector
        from eventpipe.collector.server import build_collector

        install_collector(app, build_collector(collector))
    if catalog is not None:
        from eventpipe.listeners.routes import install_listener_routes
        from eventpipe.listeners.store import store_beside

        install_listener_routes(app, store_beside(catalog.path), args.listener_idle_seconds)
    if args.lake and not is_remote(args.lake):
        _install_erasures(app, args)
    source = args.bq_table if reader else args.lake
    # The startup's objects (modules, FastAPI, DuckDB, Arrow) leave the garbage collector's
    # generations: its full collections then walk only what requests leave, instead of
    # pausing one request now and then for ~100 ms (the p99 of bench_api's shapes).
    gc.collect()
    gc.freeze()
    # h11 stays the read API's parser (its limit on a request's head is set for long filters).
    _serve(app, args, f"{source} ({args.role})", UVICORN_OPTIONS)
    return 0


def _install_erasures(app: object, args: argparse.Namespace) -> None:
    """The admin erasure endpoints, executed by `eventpipe erase --requests` (docs/erasure.md);
    with --backend bigquery the job deletes from that table too."""
    from eventpipe.collector.erasures import ErasureJobs, install_erasures

    extra = []
    if args.backend == "bigquery":
        extra = ["--sink", "bigquery", "--bq-table", args.bq_table]
        extra += ["--bq-endpoint", args.bq_endpoint] if args.bq_endpoint else []
    install_erasures(app, args.lake, ErasureJobs(args.lake, extra).start)


COLLECTOR_OPTIONS: dict[str, object] = {
    # A collector-only server: uvloop and the httptools parser, no access log line per
    # request (measured with benchmarks/bench_collector.py: see docs/collector.md).
    "loop": "uvloop",
    "http": "httptools",
    "access_log": False,
}


def _bound_socket(args: argparse.Namespace, what: str) -> socket.socket:
    """A socket bound here to --host/--port (so --port 0 works), its port in --port-file."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    if args.port_file:
        Path(args.port_file + ".tmp").write_text(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    log.info("serving %s on http://%s:%d (docs at /docs)", what, args.host, port)
    return sock


def _serve(app: object, args: argparse.Namespace, what: str, options: dict) -> None:
    """Run `app` on a socket bound here (so --port 0 works), writing --port-file."""
    import uvicorn

    sock = _bound_socket(args, what)
    # proxy_headers off: uvicorn would believe X-Forwarded-For from 127.0.0.1; the client
    # address is the collector's to decide (--trusted-proxy).
    config = uvicorn.Config(app, log_level="info", proxy_headers=False, **options)
    uvicorn.Server(config).run(sockets=[sock])


def _serve_collector(args: argparse.Namespace, config: CollectorConfig) -> int:
    """The collector only, in one process or --workers processes (which share one socket
    bound here, so --port 0 works with them too)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from eventpipe.collector.server import collector_app, config_to_env

    if args.workers == 1:
        gc.collect()
        gc.freeze()
        _serve(collector_app(config), args, f"the collector of {args.lake}", COLLECTOR_OPTIONS)
        return 0
    os.environ.update(config_to_env(config))
    what = f"the collector of {args.lake} with {args.workers} workers"
    sock = _bound_socket(args, what)
    server_config = uvicorn.Config(
        "eventpipe.collector.server:app_from_env",
        factory=True,
        workers=args.workers,
        log_level="info",
        proxy_headers=False,
        **COLLECTOR_OPTIONS,
    )
    Multiprocess(server_config, sockets=[sock]).run()
    return 0
