"""`python -m eventpipe.jobs.show --lake DIR`: what is in a lake, and how to query it."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow as pa

from eventpipe.catalog import Catalog, catalog_path


def _table(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    return str(con.sql(sql))


def show(lake: Path) -> str:
    """A human summary of the lake: last run, partitions, what the events look like."""
    events = f"read_parquet('{lake}/events/*/*.parquet', hive_partitioning = true)"
    failed = f"read_parquet('{lake}/failed/*/*.parquet', hive_partitioning = true)"
    out = []
    runs = sorted((lake / "_runs").glob("*.json"))
    summaries = [json.loads(path.read_text()) for path in runs]
    counted = [summary for summary in summaries if "read" in summary]  # import, reprocess
    if counted:
        last = counted[-1]
        out.append(
            f"Last run {last['run_id']}: read {last['read']:,} = written {last['written']:,}"
            f" + failed {last['failed']:,} + duplicates {last['duplicates']:,}"
            f" ({'reconciles' if last['reconciles'] else 'DOES NOT RECONCILE'})"
        )
    if not list(lake.glob("events/*/*.parquet")):
        out.append(f"No events in {lake}/events yet.")
        return "\n".join(out)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out.append("\nEvents by type:")
    out.append(
        _table(con, f"SELECT type, count(*) AS events FROM {events} GROUP BY ALL ORDER BY 2 DESC")
    )
    out.append("Partitions (date = UTC day of timestamp):")
    out.append(
        _table(
            con,
            f"SELECT count(DISTINCT date) AS days, min(date) AS first, max(date) AS last, "
            f"count(*) AS events FROM {events}",
        )
    )
    out.append("Identities (kpid: one per profile; see `eventpipe identity`):")
    out.append(
        _table(
            con,
            f"SELECT count(DISTINCT kpid) AS profiles, count(kpid) AS events_with_kpid, "
            f"count(*) - count(kpid) AS anonymous_events FROM {events}",
        )
    )
    out.append("Browsers and devices (enriched from the user agent):")
    out.append(
        _table(
            con,
            f"SELECT context.browser.name AS browser, context.device.type AS device, count(*) AS events "
            f"FROM {events} GROUP BY ALL ORDER BY 3 DESC LIMIT 8",
        )
    )
    by_workspace = workspaces_table(lake, con, events)
    if by_workspace is not None:
        out.append("Workspaces (by the connectionId of the events; docs/workspaces.md):")
        out.append(by_workspace)
    if list(lake.glob("failed/*/*.parquet")):
        out.append("Failed records by reason:")
        out.append(
            _table(
                con,
                f"SELECT reason, count(*) AS records, any_value(message) AS example "
                f"FROM {failed} GROUP BY ALL ORDER BY 2 DESC",
            )
        )
    out.append(
        "Query it yourself with any Parquet reader, e.g. DuckDB (duckdb.sql(...) in Python):"
    )
    out.append(
        f"  SELECT event, count(*) FROM {events}\n"
        f"  WHERE type = 'track' AND context.device.type <> 'bot' GROUP BY 1 ORDER BY 2 DESC;"
    )
    return "\n".join(out)


DEMO_READ_KEY = "_demo_read_key.json"  # `make demo` keeps its read key's JSON here (0600)


def workspaces_table(lake: Path, con: duckdb.DuckDBPyConnection, events: str) -> str | None:
    """Events by the workspace owning their connectionId (None without a catalog)."""
    if not catalog_path(lake).is_file():
        return None
    catalog = Catalog.in_lake(lake)
    owners = [(c.id, w.slug) for w in catalog.workspaces() for c in catalog.connections_of(w.id)]
    owner = pa.table(
        {"connection": [c for c, _ in owners], "workspace": [w for _, w in owners]},
        schema=pa.schema([("connection", pa.int32()), ("workspace", pa.string())]),
    )
    con.register("owner", owner)
    return _table(
        con,
        f"SELECT coalesce(o.workspace, '(no workspace)') AS workspace, "
        f"count(DISTINCT e.connectionId) AS connections, count(*) AS events "
        f"FROM {events} e LEFT JOIN owner o ON o.connection = e.connectionId "
        f"GROUP BY ALL ORDER BY 3 DESC",
    )


def _read_key(lake: Path) -> tuple[str, str]:
    """The key for the curl commands and where it comes from: the demo's read key, or a
    legacy key created in lake/_api_key for a lake without a workspace catalog."""
    demo = lake / DEMO_READ_KEY
    if demo.is_file():
        return json.loads(demo.read_text())["key"], f"the demo workspace's read key, {demo}"
    if catalog_path(lake).is_file():
        return "$KEY", (
            f"KEY: a read key, from `eventpipe keys create --lake {lake} --workspace W "
            "--scope read --json`"
        )
    key_file = lake / "_api_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(24))
        key_file.chmod(0o600)
    return key_file.read_text().strip(), f"a legacy API key created in {key_file}"


def api_hint(lake: Path) -> str:
    """How to serve the lake over HTTP, with ready-to-paste curl commands: with the demo's
    read key when the lake has a workspace catalog, else with a legacy key."""
    key, origin = _read_key(lake)
    serve = f".venv/bin/eventpipe serve --lake {lake}"
    if not catalog_path(lake).is_file():
        serve = f"EVENTPIPE_API_KEYS={key} {serve}"
    base = "http://127.0.0.1:8080/v1/events"
    curl = f'  curl -s -H "Authorization: Bearer {key}" '  # "": $KEY expands
    flt = quote(
        json.dumps(
            {
                "logical": "and",
                "conditions": [
                    {"property": "type", "operator": "is", "values": ["track"]},
                    {"property": "context.device.type", "operator": "is not", "values": ["bot"]},
                ],
            },
            separators=(",", ":"),
        )
    )
    return "\n".join(
        [
            "",
            "Serve it over HTTP (each key reads its own workspace's events only):",
            f"  {serve}",
            f"then, in another shell ({origin}):",
            f"{curl}'{base}?limit=3'",
            f"{curl}'{base}?limit=5&properties=type,event,timestamp&filter={flt}'",
            f"{curl}'{base}/schema'",
            "  (OpenAPI docs: http://127.0.0.1:8080/docs)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise an eventpipe lake.")
    parser.add_argument("--lake", required=True, type=Path)
    parser.add_argument("--api-hint", action="store_true", help="also print how to serve it")
    args = parser.parse_args(argv)
    print(show(args.lake))
    if args.api_hint:
        print(api_hint(args.lake))
    return 0


if __name__ == "__main__":
    sys.exit(main())
