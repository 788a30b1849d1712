"""Benchmark of seed 003's count service (POST /analytics/api/v1/events/count). Not a test.

Builds (once; cached in --lake) a lake of --events synthetic events (default 10,000,000)
over 30 days in two workspaces (two connections each), written by the product's own
writer: one lake transaction per day (`io.lake_sink.write_visible`, the stream's window
writer), one file per day of the lake's writer settings, sorted by timestamp, as
`eventpipe compact` leaves a day; the transaction writes each file's count summary.
The serving index is not built (counts do not read it). Then it starts `eventpipe
serve` in its own process and measures, over HTTP, the latency (p50, p99 in ms) and the
server's CPU per request of a 30-day count without filters and with a name filter, with
a legacy whole-lake key and with a workspace's key. `--scan` also times the same counts
by scanning (LakeReader without summaries, in this process) for comparison.

    .venv/bin/python benchmarks/bench_counts.py                 # build if needed, measure
    .venv/bin/python benchmarks/bench_counts.py --events 200000 --lake /tmp/small --scan
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_api
import httpx
import numpy as np
import psutil
import pyarrow as pa
from bench_api import generate_day, pct
from measured import partitioned_rows, require

from eventpipe.api.filters import compile_filters
from eventpipe.api.query import LakeReader
from eventpipe.api.seeds.analytics import COUNT_PATH
from eventpipe.catalog import Catalog
from eventpipe.io.lake import EVENTS
from eventpipe.io.lake_sink import write_visible
from eventpipe.serving.event_query import EventQuery

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)  # within the past year until 2027-11-01
DAYS = 30
LEGACY_KEY = "bench-counts-key"
CONNECTIONS = {"acme": (101, 102), "bolt": (201, 202)}
BUILT = "_BENCH_COUNTS_BUILT"


def build(lake: Path, events: int) -> None:
    """Write the lake one day (one transaction, one file) at a time, and its catalog."""
    catalog = Catalog.in_lake(lake)
    for name, ids in CONNECTIONS.items():
        ws = catalog.create_workspace(name.title())
        for connection in ids:
            catalog.create_connection(ws.id, connection_id=connection)
    bench_api.START = START  # generate_day's first day
    ids = np.array([c for pair in CONNECTIONS.values() for c in pair], np.int32)
    per_day = events // DAYS
    for day in range(DAYS):
        table = generate_day(day, per_day, 200_000, seed=3)
        spread = np.random.default_rng(day).integers(0, len(ids), table.num_rows)
        table = table.set_column(
            table.schema.get_field_index("connectionId"),
            "connectionId",
            pa.array(ids[spread], pa.int32()),
        )
        date = (START + dt.timedelta(days=day)).date().isoformat()
        t0 = time.perf_counter()
        write_visible(
            str(lake), f"bench-{date}", [(EVENTS, f"date={date}/part-compact-bench.parquet", table)]
        )
        print(f"  {date}: {table.num_rows:,} rows ({time.perf_counter() - t0:.1f} s)", flush=True)
    (lake / BUILT).write_text(str(events))


def workspace_key(lake: Path) -> str:
    catalog = Catalog.in_lake(lake)
    return catalog.create_api_key(catalog.workspace("acme").id, ["read"]).secret


BODIES = {
    "30-day count, no filter": {"startDate": "2026-11-01", "endDate": "2026-12-01"},
    "30-day count, name filter": {
        "startDate": "2026-11-01",
        "endDate": "2026-12-01",
        "filters": {"name": ["Search"]},
    },
    "30-day count, 3 names, partial end days": {
        "startDate": "2026-11-01T06:30",
        "endDate": "2026-11-30T18:00",
        "filters": {"name": ["Search", "Share", "Rated"]},
    },
}


def server_url(process: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    """The URL `eventpipe serve` logs once it listens (started on port 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if process.poll() is not None:
            raise SystemExit(f"the API server exited:\n{text[-2000:]}")
        found = re.search(r"serving .* on (http://127\.0\.0\.1:\d+)", text)
        if found and "Application startup complete" in text:
            return found.group(1)
        time.sleep(0.1)
    raise SystemExit(f"the API server did not start in {timeout:.0f} s:\n{log.read_text()[-2000:]}")


def measure(
    url: str, key: str, body: dict, repeat: int, server: psutil.Process
) -> tuple[list[float], float, int]:
    """Latencies (ms), server CPU ms per request, and the count."""
    times: list[float] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        for _ in range(3):  # warm-up
            c.post(COUNT_PATH, json=body).raise_for_status()
        cpu0 = sum(server.cpu_times()[:2])
        for _ in range(repeat):
            t0 = time.perf_counter()
            response = c.post(COUNT_PATH, json=body)
            times.append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
        cpu = (sum(server.cpu_times()[:2]) - cpu0) * 1000 / repeat
    return times, cpu, response.json()["count"]


def scan_counts(lake: Path, connections: frozenset[int] | None) -> None:
    """The same counts by scanning (no summaries), in this process, 3 runs each."""
    reader = LakeReader(lake, use_summaries=False)
    for label, body in BODIES.items():
        conditions = [
            {"property": "timestamp", "operator": "is on or after", "values": [body["startDate"]]},
            {"property": "timestamp", "operator": "is before", "values": [body["endDate"]]},
        ]
        groups = []
        if "filters" in body:
            names = body["filters"]["name"]
            groups = [
                {
                    "logical": "or",
                    "conditions": [{"property": "event", "operator": "is one of", "values": names}],
                }
            ]
        query = EventQuery(
            connections=connections,
            predicate=compile_filters({"logical": "and", "conditions": conditions}, groups),
        )
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            n = reader.count_events(query)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"  scan  {label:42s} median {sorted(times)[1]:8.1f} ms  count {n:,}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--lake", type=Path, default=None, help="default /tmp/bench-counts-<N>")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--scan", action="store_true", help="also time the counts by scanning")
    args = parser.parse_args()
    lake = args.lake or Path(tempfile.gettempdir()) / f"bench-counts-{args.events}"
    if not (lake / BUILT).exists():
        print(f"building {args.events:,} events over {DAYS} days in {lake}", flush=True)
        t0 = time.perf_counter()
        build(lake, args.events)
        print(f"built in {time.perf_counter() - t0:.0f} s")
    rows = partitioned_rows(lake / EVENTS)
    require(rows > 0 and args.repeat > 0, f"no event in {lake}, or --repeat 0")
    print(f"lake {lake}: {rows:,} events; load average {os.getloadavg()}")
    keys = {"legacy key (whole lake)": LEGACY_KEY, "workspace key (acme)": workspace_key(lake)}
    env = {**os.environ, "EVENTPIPE_API_KEYS": LEGACY_KEY}
    with tempfile.TemporaryDirectory(prefix="bench-counts-") as logs:
        log_path = Path(logs) / "server.log"
        with open(log_path, "wb") as log:
            command = [sys.executable, "-m", "eventpipe.jobs.cli", "serve", "--lake", str(lake)]
            process = subprocess.Popen(
                [*command, "--port", "0"], stdout=log, stderr=subprocess.STDOUT, env=env
            )
            try:
                url = server_url(process, log_path)
                server = psutil.Process(process.pid)
                for key_label, key in keys.items():
                    print(key_label)
                    for label, body in BODIES.items():
                        times, cpu, n = measure(url, key, body, args.repeat, server)
                        print(
                            f"  {label:48s} p50 {pct(times, 0.5):6.1f} ms  p99 "
                            f"{pct(times, 0.99):6.1f} ms  server CPU {cpu:5.1f} ms/request  "
                            f"count {n:,}",
                            flush=True,
                        )
            finally:
                process.terminate()
                process.wait(timeout=30)
    if args.scan:
        print("without summaries (LakeReader(use_summaries=False), in process):")
        scan_counts(lake, None)
        scan_counts(lake, frozenset(CONNECTIONS["acme"]))
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
