"""Benchmark of the collector (POST /v1/events, durable landing included). Not a test.

Starts `eventpipe serve --role collector` in its own process(es) over a fresh lake with a
write key, then drives it from ONE load process: raw asyncio HTTP/1.1 over --connections
keep-alive connections, each with --pipeline requests in flight (pipelined), for
--seconds, every request a batch of --batch events (~0.5 KB each). Reports requests/s,
events/s, p50/p99 latency (write of the request to the end of its answer), the server's
and the client's CPU seconds separately, events per server CPU-second and the load
average, and checks that the landing log holds every acknowledged request (else: measured
nothing).

    .venv/bin/python benchmarks/bench_collector.py --seconds 15 --connections 32 --pipeline 2
    .venv/bin/python benchmarks/bench_collector.py --workers 2   # two collector processes

The load generator runs on the same machine: its CPU is reported, and on 2 cores it is
taken from the server.
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
from collections import deque
from pathlib import Path

import orjson
from measured import require

from eventpipe.catalog import Catalog
from eventpipe.listeners.store import LISTENERS_FILE, ListenerStore


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


def requests_of(host: str, key: str, bodies: list[bytes]) -> list[bytes]:
    """Each body as a complete keep-alive `POST /v1/events` request."""
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
    )
    return [(head + f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]


async def _connection(
    host: str, port: int, requests: list[bytes], offset: int, depth: int, deadline: float
) -> tuple[list[float], int]:
    """One keep-alive connection with up to `depth` pipelined requests in flight."""
    reader, writer = await asyncio.open_connection(host, port)
    latencies: list[float] = []
    errors = 0
    sent: deque[float] = deque()
    i = offset
    while True:
        now = time.perf_counter()
        if now < deadline:
            burst = []
            while len(sent) < depth:
                burst.append(requests[i % len(requests)])
                i += 1
                sent.append(now)
            if burst:
                writer.write(b"".join(burst))
        if not sent:
            break
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        started = sent.popleft()
        if head.startswith(b"HTTP/1.1 200"):
            latencies.append(time.perf_counter() - started)
        else:
            errors += 1
    writer.close()
    return latencies, errors


async def _drive(
    host: str, port: int, requests: list[bytes], connections: int, depth: int, seconds: float
) -> tuple[list[float], int]:
    deadline = time.perf_counter() + seconds
    done = await asyncio.gather(
        *(_connection(host, port, requests, k * 7919, depth, deadline) for k in range(connections))
    )
    return [x for lat, _ in done for x in lat], sum(e for _, e in done)


def _client(url: str, key: str, args: argparse.Namespace, out: multiprocessing.Queue) -> None:
    host, port = url.removeprefix("http://").split(":")
    requests = requests_of(host, key, make_bodies(500, args.batch))
    cpu = time.process_time()
    latencies, errors = asyncio.run(
        _drive(host, int(port), requests, args.connections, args.pipeline, args.seconds)
    )
    out.put((latencies, errors, time.process_time() - cpu))


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


def server_cpu(process: subprocess.Popen) -> tuple[float, float]:
    """CPU seconds (user, system) of the server and its worker processes so far."""
    import psutil

    root = psutil.Process(process.pid)
    user = system = 0.0
    for p in [root, *root.children(recursive=True)]:
        times = p.cpu_times()
        user, system = user + times.user, system + times.system
    return user, system


def landed_lines(lake: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (lake / "landing").glob("*.jsonl*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--pipeline", type=int, default=2, help="requests in flight on each")
    parser.add_argument("--batch", type=int, default=10, help="events per request")
    parser.add_argument("--workers", type=int, default=1, help="collector processes")
    parser.add_argument(
        "--listeners", type=int, default=0, help="event listeners of the load's workspace"
    )
    parser.add_argument(
        "--other-listeners", type=int, default=0, help="event listeners of another workspace"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-collector-") as folder:
        lake = Path(folder) / "lake"
        catalog = Catalog.in_lake(lake)
        workspace = catalog.create_workspace("bench")
        connection = catalog.create_connection(workspace.id)
        key = catalog.create_write_key(workspace.id, connection.id).secret
        listeners = ListenerStore(lake / LISTENERS_FILE)
        other = catalog.create_workspace("other")
        for listened, count in ((workspace.id, args.listeners), (other.id, args.other_listeners)):
            for _ in range(count):
                listeners.create(listened, None, 1000, None, 24 * 3600.0)
        process, url = start_server(lake, args.workers, Path(folder) / "serve.log")
        try:
            out: multiprocessing.Queue = multiprocessing.Queue()
            client = multiprocessing.Process(target=_client, args=(url, key, args, out))
            idle_cpu = server_cpu(process)
            load_before = os.getloadavg()[0]
            started = time.monotonic()
            client.start()
            latencies, errors, client_cpu = out.get()
            client.join()
            elapsed = time.monotonic() - started
            user, system = (a - b for a, b in zip(server_cpu(process), idle_cpu, strict=True))
            cpu = user + system
            load_after = os.getloadavg()[0]
        finally:
            process.terminate()
            process.wait(timeout=60)
        for line in (Path(folder) / "serve.log").read_text().splitlines():
            if "the committer used" in line:
                print("  server log:", line.split("collector: ", 1)[-1])
            if "listeners: " in line and "CPU-s" in line:
                print("  server log:", line.split("listeners: ", 1)[-1])
        latencies.sort()
        landed = landed_lines(lake)
        require(bool(latencies), "no request was acknowledged")
        require(landed >= len(latencies), f"{len(latencies)} acknowledged, {landed} landed")
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        events = len(latencies) * args.batch
        print(
            f"collector, {args.workers} worker(s); load: 1 process, {args.connections} "
            f"connections x {args.pipeline} pipelined, {args.batch}-event batches, "
            f"{args.listeners} listener(s) (+{args.other_listeners} of another workspace), "
            f"{elapsed:.1f} s (cpus: {os.cpu_count()}, load average {load_before:.1f} -> "
            f"{load_after:.1f})"
        )
        print(
            f"  requests/s {len(latencies) / elapsed:,.0f}   events/s {events / elapsed:,.0f}   "
            f"p50 {statistics.median(latencies) * 1000:.1f} ms   p99 {p99 * 1000:.1f} ms   "
            f"errors {errors}   landed {landed:,} requests"
        )
        print(
            f"  CPU: server {cpu:.1f} s ({events / max(cpu, 1e-9):,.0f} events per server "
            f"CPU-second, {cpu / max(len(latencies), 1) * 1e6:,.0f} us a request; user "
            f"{user:.1f} s, system {system:.1f} s), "
            f"client {client_cpu:.2f} s"
        )


if __name__ == "__main__":
    main()
