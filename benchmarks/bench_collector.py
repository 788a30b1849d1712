"""Benchmark of the collector (POST /v1/events, durable landing included). Not a test.

Starts `eventpipe serve --role collector` in its own process(es) over a fresh lake with a
write key, then drives it from --clients load processes, each keeping --concurrency
keep-alive requests in flight (asyncio + aiohttp) for --seconds, every request a batch of
--batch events (~0.5 KB each). Reports requests/s, events/s and the p50/p99 latency, and
checks that the landing log holds every acknowledged request (else: measured nothing).

    .venv/bin/python benchmarks/bench_collector.py --seconds 20 --clients 2 --concurrency 32
    .venv/bin/python benchmarks/bench_collector.py --workers 2   # two collector processes

The load generator runs on the same machine: on 2 cores it takes CPU from the server.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from measured import require

from eventpipe.catalog import Catalog


def make_bodies(n: int, batch: int) -> list[bytes]:
    """`n` distinct request bodies of `batch` events each."""
    bodies = []
    for i in range(n):
        events = [
            {
                "type": "track",
                "event": "Product Viewed",
                "anonymousId": str(uuid.uuid4()),
                "messageId": str(uuid.uuid4()),
                "timestamp": "2026-12-01T10:00:00.000Z",
                "context": {
                    "page": {"url": f"https://shop.example/p/{i}?utm_source=news", "title": "P"},
                    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
                    "(KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                    "locale": "en-GB",
                },
                "properties": {"sku": f"SKU-{i}-{j}", "price": 19.99, "currency": "EUR"},
            }
            for j in range(batch)
        ]
        bodies.append(orjson.dumps({"batch": events, "sentAt": "2026-12-01T10:00:01.000Z"}))
    return bodies


async def _drive(url: str, key: str, bodies: list[bytes], concurrency: int, seconds: float):
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.monotonic() < deadline:
                body = bodies[i % len(bodies)]
                i += concurrency
                started = time.perf_counter()
                async with session.post(url + "/v1/events", data=body) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return latencies, errors


def _client(url: str, key: str, batch: int, concurrency: int, seconds: float, out) -> None:
    bodies = make_bodies(500, batch)
    out.put(asyncio.run(_drive(url, key, bodies, concurrency, seconds)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(lake: Path, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "eventpipe.jobs.cli", "serve", "--role", "collector"]
    command += ["--lake", str(lake), "--workers", str(workers)]
    port_file = lake.parent / "port"
    if workers == 1:
        command += ["--port", "0", "--port-file", str(port_file)]
    else:
        port = free_port()
        command += ["--port", str(port)]
        port_file.write_text(str(port))
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    while not port_file.exists():
        time.sleep(0.05)
    port = int(port_file.read_text())
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            sys.exit(f"the collector did not start:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline:
            sys.exit("the collector did not start in 60 s")
        time.sleep(0.1)
    time.sleep(2 if workers > 1 else 0.5)  # every worker up (their DuckDB sessions too)
    return process, f"http://127.0.0.1:{port}"


def server_cpu(process: subprocess.Popen) -> float:
    """CPU seconds (user + system) of the server and its worker processes so far."""
    import psutil

    root = psutil.Process(process.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def landed_lines(lake: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (lake / "landing").glob("*.jsonl*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight each")
    parser.add_argument("--batch", type=int, default=10, help="events per request")
    parser.add_argument("--workers", type=int, default=1, help="collector processes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-collector-") as folder:
        lake = Path(folder) / "lake"
        catalog = Catalog.in_lake(lake)
        workspace = catalog.create_workspace("bench")
        connection = catalog.create_connection(workspace.id)
        key = catalog.create_write_key(workspace.id, connection.id).secret
        process, url = start_server(lake, args.workers, Path(folder) / "serve.log")
        try:
            out: multiprocessing.Queue = multiprocessing.Queue()
            clients = [
                multiprocessing.Process(
                    target=_client,
                    args=(url, key, args.batch, args.concurrency, args.seconds, out),
                )
                for _ in range(args.clients)
            ]
            idle_cpu = server_cpu(process)
            started = time.monotonic()
            for client in clients:
                client.start()
            results = [out.get() for _ in clients]
            for client in clients:
                client.join()
            elapsed = time.monotonic() - started
            cpu = server_cpu(process) - idle_cpu
        finally:
            process.terminate()
            process.wait(timeout=60)
        latencies = sorted(x for lat, _ in results for x in lat)
        errors = sum(e for _, e in results)
        landed = landed_lines(lake)
        require(bool(latencies), "no request was acknowledged")
        require(landed >= len(latencies), f"{len(latencies)} acknowledged, {landed} landed")
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"collector, {args.workers} worker(s); load: {args.clients} processes x "
            f"{args.concurrency} in flight, {args.batch}-event batches, {elapsed:.1f} s "
            f"(cpus: {os.cpu_count()})"
        )
        print(
            f"  requests/s {len(latencies) / elapsed:,.0f}   events/s "
            f"{len(latencies) * args.batch / elapsed:,.0f}   p50 "
            f"{statistics.median(latencies) * 1000:.1f} ms   p99 {p99 * 1000:.1f} ms   "
            f"errors {errors}   landed {landed:,} requests"
        )
        print(
            f"  server CPU {cpu:.1f} s under load: "
            f"{len(latencies) * args.batch / cpu:,.0f} events per server CPU-second"
        )


if __name__ == "__main__":
    main()
