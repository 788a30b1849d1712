"""`python -m eventpipe.jobs.show --lake DIR`: what is in a lake, and how to query it."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from urllib.parse import quote

import duckdb


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


def api_hint(lake: Path) -> str:
    """How to serve the lake over HTTP, with a new API key and ready-to-paste curl commands."""
    key_file = lake / "_api_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(24))
        key_file.chmod(0o600)
    key = key_file.read_text().strip()
    base = "http://127.0.0.1:8080/v1/events"
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
            "Serve it over HTTP (API key created in lake/_api_key):",
            f"  EVENTPIPE_API_KEYS={key} .venv/bin/eventpipe serve --lake {lake}",
            "then, in another shell:",
            f"  curl -s -H 'Authorization: Bearer {key}' '{base}?limit=3'",
            f"  curl -s -H 'Authorization: Bearer {key}' '{base}?limit=5&properties=type,event,timestamp&filter={flt}'",
            f"  curl -s -H 'Authorization: Bearer {key}' '{base}/schema'",
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
