"""Resident memory of `eventpipe serve` under load and after heavy filters. Not a test.

Starts `eventpipe serve` in its own process over a lake built by bench_api.py, sends
--requests requests of bench_api's shapes (plus deep pages and rare json values) from
--clients concurrent clients, then six heavy filters (3 x 1,000-value `is one of`, 100
json `contains`) from six clients, and prints the server's RSS (psutil, sampled every
10 ms) at each step and the response statuses.

    .venv/bin/python benchmarks/bench_api.py --events 200000 --days 10 --lake /tmp/l --build-only
    .venv/bin/python benchmarks/bench_api.py --lake /tmp/l --reuse --index --repeat 1  # optional
    .venv/bin/python benchmarks/bench_api_memory.py --lake /tmp/l [--serve-args "--max-queries 4"]
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from bench_api import API_KEY, query_shapes, server_url
from measured import partitioned_rows, require


def _heavy_filters() -> list[dict[str, str]]:
    texts = [
        {
            "property": f"properties.p{k}",
            "operator": "is one of",
            "values": [f"v{i}" for i in range(1000)],
        }
        for k in range(3)
    ]
    contains = [
        {"property": "properties.plan", "operator": "contains", "values": [f"x{i}"]}
        for i in range(100)
    ]
    return [
        {"filter": json.dumps({"logical": "or", "conditions": conditions})}
        for conditions in (texts, contains)
    ] * 3


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--serve-args", default="", help="more `eventpipe serve` options")
    args = parser.parse_args()
    require(
        partitioned_rows(args.lake / "events") > 0,
        f"{args.lake} holds no events (no {args.lake / 'events'}/date=*/*.parquet): build it "
        "first, e.g. bench_api.py --events 200000 --days 10 --lake DIR --build-only",
    )
    command = [sys.executable, "-m", "eventpipe.jobs.cli", "serve", "--lake", str(args.lake)]
    command += ["--port", "0", "--api-key", API_KEY, *shlex.split(args.serve_args)]
    logs = tempfile.TemporaryDirectory(prefix="bench-api-memory-")
    log = Path(logs.name) / "server.log"
    with log.open("wb") as out:  # port 0: the server binds a free port and logs it
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=out)
    try:
        url = server_url(server, log)
        process = psutil.Process(server.pid)
        peak = [process.memory_info().rss]
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.01):
                peak[0] = max(peak[0], process.memory_info().rss)

        threading.Thread(target=watch, daemon=True).start()
        statuses: Counter = Counter()
        headers = {"Authorization": f"Bearer {API_KEY}"}
        limits = httpx.Limits(max_connections=args.clients + 8)
        with httpx.Client(base_url=url, headers=headers, timeout=120, limits=limits) as client:

            def get(params: dict[str, str]) -> None:
                try:
                    statuses[client.get("/v1/events", params=params).status_code] += 1
                except httpx.TransportError as exc:
                    statuses[type(exc).__name__] += 1

            shapes = list(query_shapes(args.lake).values())

            def one(i: int) -> None:
                rnd = random.Random(i)
                params = dict(rnd.choice(shapes))
                if rnd.random() < 0.3:
                    params = {"first": str(rnd.randrange(150_000)), "limit": "1000"}
                if rnd.random() < 0.2:
                    product = f"p-{rnd.randrange(100_000)}"
                    condition = {
                        "property": "properties.product_id",
                        "operator": "is",
                        "values": [product],
                    }
                    params = {
                        "limit": "1000",
                        "filter": json.dumps({"logical": "and", "conditions": [condition]}),
                    }
                get(params)

            for _ in range(3):
                get({"limit": "10"})
            mb = lambda n: f"{n / 2**20:.0f} MB"  # noqa: E731
            print(f"baseline RSS {mb(process.memory_info().rss)}")
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(one, range(args.requests)))
            time.sleep(1)
            print(
                f"after {args.requests} requests from {args.clients} clients: "
                f"RSS {mb(process.memory_info().rss)}, peak {mb(peak[0])}"
            )
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(get, _heavy_filters()))
            time.sleep(1)
            print(f"after 6 heavy filters: RSS {mb(process.memory_info().rss)}, peak {mb(peak[0])}")
            print(f"statuses: {dict(statuses)}")
            require(statuses[200] > 0, f"no request was answered ({dict(statuses)})")
        done.set()
    finally:
        server.terminate()
        server.wait(timeout=30)
        logs.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
