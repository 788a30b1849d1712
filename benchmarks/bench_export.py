"""Benchmark of seed 002's export (GET /export/events) page by page. Not a test.

Builds (once; `--lake` is reused when it holds events) a lake of synthetic events (default
10,000,000 over 30 days) as an import leaves it (bench_api's generator, several files per
day), compacts it with `eventpipe compact` (one file per day sorted by timestamp, and the
serving index: exactly what the product makes), then starts `eventpipe serve` in its own
process and pages through the export with a workspace read key at `--page-size`,
following `nextCursor`, for `--events` events (default 300,000; `--events 0`: the whole
export). Reports wall-clock events/s and events per CPU-second of the server (its CPU
time over the run, from /proc) and of server + client.

    .venv/bin/python benchmarks/bench_export.py --lake /tmp/export-lake
    .venv/bin/python benchmarks/bench_export.py --lake /tmp/export-lake --events 0   # all
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
from bench_api import api_server, build_lake, workspace_key
from measured import partitioned_rows, require


def build(lake: Path, events: int, days: int, files: int) -> None:
    """An imported lake (`files` per day), then compacted and indexed by the product."""
    print(f"building {events:,} events over {days} days in {lake} ({files} files/day)")
    t0 = time.perf_counter()
    build_lake(lake, events, days, "timestamp", 16_384, files, 200_000, 1)
    print(f"written in {time.perf_counter() - t0:.0f} s; compacting", flush=True)
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "eventpipe.jobs.cli",
            "compact",
            "--lake",
            str(lake),
            "--table",
            "events",
        ],
        check=True,
    )
    print(f"compacted and indexed in {time.perf_counter() - t0:.0f} s", flush=True)


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def export(
    url: str, key: str, page_size: int, wanted: int, start: int | None = None
) -> tuple[int, int, str]:
    """Page through the export (from `start`, ms) until `wanted` events (0: all);
    (events, pages, last id)."""
    seen = pages = 0
    cursor, last = "", ""
    with httpx.Client(base_url=url, headers={"X-Api-Key": key}, timeout=120) as client:
        while True:
            params: dict[str, object] = {"pageSize": page_size}
            if start is not None:
                params["start"] = start
            if cursor:
                params["cursor"] = cursor
            response = client.get("/export/events", params=params)
            response.raise_for_status()
            body = orjson.loads(response.content)
            seen += len(body["items"])
            pages += 1
            last = body["items"][-1]["id"] if body["items"] else last
            cursor = body["nextCursor"]
            if not cursor or (wanted and seen >= wanted):
                return seen, pages, last


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--lake", type=Path, default=Path("/tmp/export-lake"))
    parser.add_argument("--lake-events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--files", type=int, default=4, help="files per day before compaction")
    parser.add_argument("--events", type=int, default=300_000, help="events to export (0: all)")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--start", type=int, help="export from this time (ms): deep pages")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()

    if not (args.lake / "events").is_dir():
        build(args.lake, args.lake_events, args.days, args.files)
    if args.build_only:
        return 0
    total = partitioned_rows(args.lake / "events")
    require(total > 0, f"no event in {args.lake}")
    key = workspace_key(args.lake)
    print(f"lake {args.lake}: {total:,} events; load average {os.getloadavg()}")
    with api_server(args.lake) as (url, process):
        export(url, key, args.page_size, args.page_size * 3, args.start)  # warm up
        server_before = sum(process.cpu_times()[:2])
        client_before = client_cpu()
        t0 = time.perf_counter()
        seen, pages, last = export(url, key, args.page_size, args.events, args.start)
        wall = time.perf_counter() - t0
        server_cpu = sum(process.cpu_times()[:2]) - server_before
        client = client_cpu() - client_before
    require(seen > 0, "the export returned no event")
    print(f"exported {seen:,} events in {pages:,} pages of {args.page_size} (last id {last})")
    print(f"wall: {wall:.1f} s = {seen / wall:,.0f} events/s ({wall / pages * 1000:.1f} ms a page)")
    print(f"server CPU: {server_cpu:.1f} s = {seen / server_cpu:,.0f} events per server CPU-second")
    both = server_cpu + client
    print(f"server + client CPU: {both:.1f} s = {seen / both:,.0f} events per CPU-second")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
