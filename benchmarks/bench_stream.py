"""Benchmark: `eventpipe stream` on the DirectRunner against the Pub/Sub emulator.

Two measurements, each a real `eventpipe stream` process reading a fresh subscription:

- backlog: N events are published first (as raw batches of `--batch` events per
  message, connectionId and ip in the attributes), then the job drains them and
  stops after 2 idle seconds. Sustained events/s = events / (last file visible -
  job start), job start-up included; the job's own time is printed too.
- live: a publisher sends `--rate` events/s for `--seconds` while the job runs with
  `--window-seconds W`; a watcher lists the lake every 0.1 s and reads each new
  file: end-to-end latency per event = the time its file became visible - its
  publish time (the event's `timestamp` is set at publish). A window's file can only
  appear once the watermark passes the window's end, so latency >= W/2 on average.
  Publishing starts as the job starts (so its `--stop-after-idle` cannot fire before
  the first message); events published in the first `--warmup` seconds, while the job
  starts up, are read and counted but left out of the latency figures.

Exits non-zero when a measurement measured nothing (no event read or written, no
latency) or lost events (read != published, or the summary does not reconcile).

Enrichment is on (as the job's default). The emulator runs on this machine too.

    python benchmarks/bench_stream.py --events 200000 --batch 100 --rate 5000 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow.parquet as pq
from google.cloud import pubsub_v1

from eventpipe.io.pubsub_emulator import PubSubEmulator

ATTRS = {"connectionId": "1", "ip": "81.2.69.160"}


class MeasuredNothing(Exception):
    """A measurement that read, wrote or timed nothing, or lost events: not a result."""


def check(measured: str, published: int, s: dict, job: subprocess.Popen) -> None:
    """Raise MeasuredNothing unless the job read and wrote every published event."""
    problems = []
    if job.returncode != 0:
        problems.append(f"the job exited {job.returncode}")
    if s["read"] == 0 or s["written"] == 0:
        problems.append(f"read {s['read']:,}, written {s['written']:,}")
    if s["read"] != published or not s["reconciles"]:
        problems.append(f"published {published:,} but read {s['read']:,} (summary {s})")
    if problems:
        raise MeasuredNothing(f"{measured}: " + "; ".join(problems))


def event(i: int, at: datetime) -> dict:
    return {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": f"anon-{i % 5000}",
        "messageId": f"msg-{i}",
        "timestamp": at.isoformat(),
        "context": {
            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "page": {"url": f"https://shop.example/p/{i % 300}?utm_source=news", "title": "P"},
        },
        "properties": {"sku": f"sku-{i % 1000}", "price": 12.5},
    }


def batch_message(first: int, size: int, at: datetime) -> bytes:
    return orjson.dumps({"batch": [event(first + k, at) for k in range(size)]})


def start_job(lake: Path, subscription: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "eventpipe.jobs.cli", "stream", "--subscription", subscription,
         "--lake", str(lake), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=os.environ.copy(),
    )  # fmt: skip


def summary(lake: Path) -> dict:
    records = list((lake / "_runs").glob("*.json"))
    if len(records) != 1:
        raise MeasuredNothing(f"the job recorded {len(records)} run summaries in {lake}")
    return json.loads(records[0].read_text())


def backlog(emulator: PubSubEmulator, events: int, batch: int, work: Path) -> None:
    topic, subscription = emulator.create("bench-backlog")
    publisher = pubsub_v1.PublisherClient()
    now = datetime.now(UTC)
    started = time.monotonic()
    futures = [
        publisher.publish(topic, batch_message(i, batch, now), **ATTRS)
        for i in range(0, events, batch)
    ]
    for f in futures:
        f.result()
    print(f"backlog: published {events:,} events in {len(futures):,} messages "
          f"in {time.monotonic() - started:.1f}s")  # fmt: skip
    lake = work / "backlog"
    started = time.monotonic()
    job = start_job(lake, subscription, "--stop-after-idle", "2")
    out, _ = job.communicate()
    elapsed = time.monotonic() - started
    s = summary(lake)
    check("backlog", events, s, job)
    files = list((lake / "events").glob("*/*.parquet"))
    last_file = max(p.stat().st_mtime for p in files)
    busy = last_file - (time.time() - elapsed)
    print(out.strip())
    print(f"backlog: read {s['read']:,} written {s['written']:,} in {len(files)} event files; "
          f"job process {elapsed:.1f}s (incl. ~2s idle stop); last file after {busy:.1f}s "
          f"-> {s['written'] / busy:,.0f} events/s sustained (start-up included)")  # fmt: skip


def live(
    emulator: PubSubEmulator,
    rate: int,
    seconds: int,
    batch: int,
    window: int,
    warmup: float,
    work: Path,
) -> None:
    topic, subscription = emulator.create("bench-live")
    lake = work / "live"
    publisher = pubsub_v1.PublisherClient()
    job = start_job(lake, subscription, "--stop-after-idle", "5", "--window-seconds", str(window))
    started = time.monotonic()
    measured_from = time.time() + warmup  # events published later count for the latency
    seen: dict[Path, float] = {}
    latencies: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() or job.poll() is None:
            for path in (lake / "events").glob("*/*.parquet"):
                if path not in seen:
                    visible = time.time()
                    seen[path] = visible
                    stamps = pq.read_table(path, columns=["timestamp"])["timestamp"].to_pylist()
                    latencies.extend(
                        visible - t.timestamp() for t in stamps if t.timestamp() >= measured_from
                    )
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    sent = 0
    while time.monotonic() - started < warmup + seconds:
        tick = time.monotonic()
        now = datetime.now(UTC)
        per_tick = max(batch, rate // 10)
        futures = [
            publisher.publish(topic, batch_message(sent + k, batch, now), **ATTRS)
            for k in range(0, per_tick, batch)
        ]
        for f in futures:
            f.result()
        sent += len(futures) * batch
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    published_for = time.monotonic() - started
    job.communicate()
    stop.set()
    watcher.join()
    s = summary(lake)
    check("live", sent, s, job)
    if not latencies:
        raise MeasuredNothing(f"live: no event published after the {warmup:g}s warm-up was timed")
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    print(f"live: published {sent:,} events in {published_for:.1f}s ({sent / published_for:,.0f}/s), "
          f"read {s['read']:,}, written {s['written']:,}, {len(seen)} event files, window {window}s")  # fmt: skip
    print(f"live: publish -> file visible latency over {len(latencies):,} events published after "
          f"the {warmup:g}s warm-up: p50 {statistics.median(latencies):.2f}s "
          f"p95 {pct(0.95):.2f}s max {latencies[-1]:.2f}s")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="backlog events")
    parser.add_argument("--batch", type=int, default=100, help="events per Pub/Sub message")
    parser.add_argument("--rate", type=int, default=5_000, help="live events/s")
    parser.add_argument("--seconds", type=int, default=30, help="live publishing time")
    parser.add_argument("--window", type=int, default=5, help="live --window-seconds")
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="live: seconds of job start-up left out of latency",
    )
    args = parser.parse_args()
    with PubSubEmulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        try:
            backlog(emulator, args.events, args.batch, Path(tmp))
            live(emulator, args.rate, args.seconds, args.batch, args.window, args.warmup, Path(tmp))
        except MeasuredNothing as failure:
            print(f"MEASURED NOTHING: {failure}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
