"""Benchmark of freshness: POST /v1/events -> the event visible in GET /v1/events. Not a test.

For each offered rate (events/s), over a fresh lake with a workspace, a write key and a read
key: starts the server (collector + read API) with its ingestion, sends requests of --batch
events at that rate for --seconds (paced: the rate is offered, not pushed to the maximum),
and polls `GET /v1/events?limit=1` (newest first) all along. Every event carries its
sequence number and, as `timestamp`, its planned send time, so the newest visible event
says how far the lake has caught up; a request is visible when the newest visible event is
at or past its last one (the ingester commits in landing order; requests in flight may land
a few ms out of order). Reports p50/p95/max of (visible - sent) per request, the events per
CPU-second of the server side (collector, read API, ingester: their processes' CPU) and the
load average; checks that the lake holds every acknowledged event once (else: measured
nothing).

    .venv/bin/python benchmarks/bench_freshness.py --rates 100 1000 10000 --seconds 20
    .venv/bin/python benchmarks/bench_freshness.py --via pubsub --rates 100 1000 --seconds 20

--via lake (default): `eventpipe serve --ingest` (the landing log, `eventpipe ingest` as its
child). --via pubsub: `eventpipe serve --landing pubsub` on the Pub/Sub emulator, `eventpipe
stream --window-seconds W` into the lake, and `eventpipe serve --role read` for the GETs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import duckdb
import httpx
import orjson
import psutil
from measured import require

from eventpipe.catalog import Catalog

CLI = [sys.executable, "-m", "eventpipe.jobs.cli"]


def start(
    command: list[str], log: Path, port_file: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """Start `eventpipe COMMAND`; with `port_file`, wait for its server and return its URL."""
    process = subprocess.Popen([*CLI, *command], stdout=log.open("ab"), stderr=subprocess.STDOUT)
    if port_file is None:
        return process, ""
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"{command[0]} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port_file.read_text()}"
    while True:
        try:
            httpx.get(url + "/v1/events/schema", timeout=5)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)


def cpu_seconds(processes: list) -> float:
    """User + system CPU seconds of `processes` and their children so far."""
    total = 0.0
    for process in processes:
        root = psutil.Process(process.pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                times = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


def children(process: subprocess.Popen) -> list[psutil.Process]:
    """The child processes of `process` (serve --ingest: the ingester)."""
    return psutil.Process(process.pid).children(recursive=True)


def bodies(rate: float, seconds: float, batch: int, start: float) -> list[tuple[float, int, bytes]]:
    """(planned send time, request number, body) of every request (its events carry
    `properties.request`, and the planned time as `timestamp`)."""
    out = []
    interval = batch / rate
    for k in range(int(rate * seconds / batch)):
        at = start + k * interval
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e6):06d}Z"
        events = [
            {
                "type": "track",
                "event": "Product Viewed",
                "anonymousId": f"anon-{k % 997}",
                "messageId": str(uuid.uuid4()),
                "timestamp": stamp,
                "context": {"page": {"url": f"https://shop.example/p/{k}?utm_source=news"}},
                "properties": {"request": k, "sku": f"SKU-{k}-{j}"},
            }
            for j in range(batch)
        ]
        out.append((at, k, orjson.dumps({"batch": events})))
    return out


def send(
    url: str, key: str, plan: list[tuple[float, int, bytes]], sent: dict, senders: int
) -> None:
    """Send the planned requests on time from `senders` threads; `sent[request] = send time`."""

    def sender(share: list[tuple[float, int, bytes]]) -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            for at, request, body in share:
                delay = at - time.time()
                if delay > 0:
                    time.sleep(delay)
                began = time.time()
                answer = http.post("/v1/events", content=body)
                if answer.status_code == 200:
                    sent[request] = began

    threads = [threading.Thread(target=sender, args=(plan[i::senders],)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def warm_up(url: str, write_key: str, read_url: str, read_key: str) -> None:
    """Post one event and wait until the read API shows it (not measured)."""
    event = {"type": "track", "event": "Warm", "anonymousId": "warm", "properties": {"request": -1}}
    answer = httpx.post(
        url + "/v1/events", json=event, headers={"Authorization": f"Bearer {write_key}"}
    )
    require(answer.status_code == 200, f"the warm-up POST: {answer.text}")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        shown = httpx.get(
            read_url + "/v1/events", headers={"Authorization": f"Bearer {read_key}"}, timeout=60
        )
        if shown.status_code == 200 and shown.json()["events"]:
            return
        time.sleep(0.2)
    require(False, "the warm-up event never became visible")


def poll(url: str, key: str, seen: list[tuple[float, int]], stop: threading.Event) -> None:
    """(time, newest visible request number), every 0.2 s."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        while not stop.is_set():
            answer = http.get("/v1/events", params={"limit": 1})
            now = time.time()
            events = answer.json().get("events", []) if answer.status_code == 200 else []
            if events:
                properties = events[0]["properties"]
                if isinstance(properties, str):
                    properties = orjson.loads(properties)
                seen.append((now, int(properties["request"])))
            stop.wait(0.2)


def latencies(sent: dict[int, float], seen: list[tuple[float, int]]) -> list[float]:
    """Per acknowledged request: the first time the newest visible request reached it - sent."""
    out, i, newest = [], 0, -1
    for last in sorted(sent):
        while newest < last and i < len(seen):
            newest = max(newest, seen[i][1])
            at = seen[i][0]
            i += 1
        if newest < last:
            break
        out.append(at - sent[last])
    return out


def one_rate(args: argparse.Namespace, rate: float, work: Path, stack: ExitStack) -> None:
    lake = work / f"lake-{int(rate)}"
    catalog = Catalog.in_lake(lake)
    workspace = catalog.create_workspace("bench")
    connection = catalog.create_connection(workspace.id)
    write_key = catalog.create_write_key(workspace.id, connection.id).secret
    read_key = catalog.create_api_key(workspace.id, ["read"]).secret
    log = work / f"server-{int(rate)}.log"
    processes = []
    if args.via == "lake":
        port = work / f"port-{int(rate)}"
        command = ["serve", "--lake", str(lake), "--port", "0", "--port-file", str(port)]
        command += ["--ingest", "--ingest-interval-seconds", str(args.interval)]
        server, url = start(command, log, port)
        processes, read_url = [server], url
    else:
        emulator = stack.enter_context(
            __import__("eventpipe.io.pubsub_emulator", fromlist=["x"]).PubSubEmulator()
        )
        topic, subscription = emulator.create(f"fresh-{int(rate)}")
        port, read_port = work / f"port-{int(rate)}", work / f"read-port-{int(rate)}"
        collector = ["serve", "--lake", str(lake), "--role", "collector", "--landing", "pubsub"]
        server, url = start(
            [*collector, "--topic", topic, "--port", "0", "--port-file", str(port)], log, port
        )
        stream = ["stream", "--subscription", subscription, "--lake", str(lake)]
        stream += ["--window-seconds", str(args.window), "--allowed-lateness", "0"]
        streamer, _ = start(stream, log)
        reader = [
            "serve",
            "--lake",
            str(lake),
            "--role",
            "read",
            "--port",
            "0",
            "--port-file",
            str(read_port),
        ]
        read_server, read_url = start(reader, log, read_port)
        processes = [server, streamer, read_server]
        time.sleep(5)  # the stream's pipeline up
    try:
        warm_up(url, write_key, read_url, read_key)  # the ingester started, caches warm
        began = time.time() + 2
        plan = bodies(rate, args.seconds, args.batch, began)
        sent: dict[int, float] = {}
        seen: list[tuple[float, int]] = []
        stop = threading.Event()
        poller = threading.Thread(target=poll, args=(read_url, read_key, seen, stop))
        poller.start()
        cpu = cpu_seconds(processes)
        ingesters = children(processes[0]) if args.via == "lake" else [processes[1]]
        ingest_cpu = cpu_seconds(ingesters)
        send(url, write_key, plan, sent, args.senders)
        deadline = time.time() + args.drain
        last = max(sent, default=-1)
        while time.time() < deadline and (not seen or seen[-1][1] < last):
            time.sleep(0.1)
        stop.set()
        poller.join()
        cpu = cpu_seconds(processes) - cpu
        ingesters = children(processes[0]) if args.via == "lake" else [processes[1]]
        ingest_cpu = cpu_seconds(ingesters) - ingest_cpu
        load = os.getloadavg()
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=120)
    acked = len(sent) * args.batch
    found = duckdb.sql(
        f"SELECT count(*), count(DISTINCT messageId) FROM read_parquet('{lake}/events/*/*.parquet')"
    ).fetchall()[0]
    held = (acked + 1, acked + 1)  # (and the warm-up event)
    require(found == held, f"the lake holds {found} events, {held[0]} acknowledged")
    lat = latencies(sent, seen)
    require(len(lat) == len(sent), f"{len(sent) - len(lat)} requests never became visible")
    lat.sort()
    p95 = lat[int(0.95 * (len(lat) - 1))]
    # What the senders achieved (a request is sent late when the server falls behind: the
    # latency counts from the actual send, so the achieved rate must be read beside it).
    span = max(sent.values()) - min(sent.values()) if len(sent) > 1 else 0.0
    achieved = (len(sent) - 1) * args.batch / span if span > 0 else float("nan")
    print(
        f"{args.via:6} {rate:>7,.0f} ev/s offered, {achieved:,.0f} achieved: "
        f"{acked:,} events in {len(sent):,} requests; "
        f"visible after p50 {statistics.median(lat):.2f} s, p95 {p95:.2f} s, max {lat[-1]:.2f} s; "
        f"{acked / cpu:,.0f} events/CPU-s server side ({cpu:.1f} CPU-s), "
        f"of which ingestion (ingester or stream) {ingest_cpu:.1f}; "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--seconds", type=float, default=20.0, help="sending time per rate")
    parser.add_argument(
        "--batch", type=int, default=0, help="events per request (0: rate/100, 1..50)"
    )
    parser.add_argument(
        "--senders", type=int, default=16, help="client threads (4 could not offer 10,000 ev/s)"
    )
    parser.add_argument("--via", choices=("lake", "pubsub"), default="lake")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="ingester batch interval (lake)"
    )
    parser.add_argument("--window", type=int, default=1, help="stream window seconds (pubsub)")
    parser.add_argument(
        "--drain", type=float, default=120.0, help="most seconds to wait after sending"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-freshness-") as folder:
        for rate in args.rates:
            batch = args.batch or max(1, min(50, int(rate // 100)))
            with ExitStack() as stack:
                one_rate(
                    argparse.Namespace(**{**vars(args), "batch": batch}), rate, Path(folder), stack
                )


if __name__ == "__main__":
    main()
