"""Benchmark of the read API (GET /v1/events) over a generated lake. Not a test.

Builds a lake of synthetic events (default 2,000,000 over 30 daily partitions) with a
chosen layout, starts `eventpipe serve` in its own process, and measures the latency
of the query shapes of issue 5 through HTTP (median, p95, p99 in ms), plus the
resident memory of the API process.

    .venv/bin/python benchmarks/bench_api.py --events 2000000 --layout timestamp
    .venv/bin/python benchmarks/bench_api.py --lake /tmp/lake --reuse   # measure again
    .venv/bin/python benchmarks/bench_api.py --lake /tmp/lake --reuse --index  # index first

--index builds (or brings up to date) the serving index that `eventpipe compact` builds
(LAKE/_index/: row order, value table, row store), and reports its build time and size
(and its ratio to the events' Parquet); a lake measured without it is read by scanning
only.

Layouts (inside each partition; row groups of --row-group rows, zstd):
  timestamp  sorted by timestamp (what the import job writes)
  user       sorted by userId, session id, timestamp (the "serving" sort)
--files N splits each partition into N files (a bulk import leaves many small ones).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from measured import partitioned_rows, require

from eventpipe.catalog import Catalog
from eventpipe.schemas import arrow_schema
from eventpipe.serving.index_build import INDEX, index_lake

API_KEY = "bench-key"
BENCH_CONNECTION = 1371036433  # every event's connectionId
EVENT_NAMES = [
    "Page Viewed",
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Signed In",
    "Signed Out",
    "Search",
    "Video Played",
    "Workout Completed",
    "Share",
    "Coupon Applied",
    "Cart Viewed",
    "Product Removed",
    "Subscription Renewed",
    "Rated",
    "Notification Opened",
    "Invite Sent",
    "Level Up",
    "Feedback Given",
]
PLANS = ["free", "basic", "pro", "team", "enterprise"]
BROWSERS = ["Chrome", "Safari", "Edge", "Firefox", "Samsung Internet", "Opera", "Other"]
OSES = ["Android", "Windows", "iOS", "macOS", "Linux", "Chrome OS", "Other"]
START = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)


def _choice(rng: np.random.Generator, values: list[str], n: int, p=None) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(rng.choice(len(values), n, p=p), pa.int32()), pa.array(values)
    ).cast(pa.string())


def generate_day(day: int, n: int, users: int, seed: int) -> pa.Table:
    """`n` synthetic events of day `day` (vectorised; ~1 KB each with context).

    Events come in sessions of ~20 events within 30 minutes; a session belongs to one
    user (20% anonymous); a fifth of the sessions go to a few busy users (Zipf), the
    rest to users drawn uniformly from `users`.
    """
    rng = np.random.default_rng(seed + day)
    base_us = int((START + dt.timedelta(days=day)).timestamp() * 1_000_000)
    sessions = max(1, n // 20)
    busy = rng.random(sessions) < 0.2
    session_user = np.where(
        busy, np.minimum(rng.zipf(1.3, sessions), users) - 1, rng.integers(0, users, sessions)
    )
    session_anonymous = rng.random(sessions) < 0.2
    session_start = rng.integers(0, 86_400_000_000 - 1_800_000_000, sessions)
    of_session = rng.integers(0, sessions, n)
    relative = session_start[of_session] + rng.integers(0, 1_800_000_000, n)
    order = np.argsort(relative, kind="stable")
    of_session = of_session[order]
    stamp = base_us + relative[order]
    user_n = session_user[of_session]
    anonymous = session_anonymous[of_session]
    user_ids = pa.array([f"user-{u:06d}" for u in user_n.tolist()], pa.string())
    user_ids = pc.if_else(pa.array(anonymous), pa.nulls(n, pa.string()), user_ids)
    session = (day + 1) * 100_000_000 + of_session.astype(np.int64)
    plans = rng.integers(0, len(PLANS), n)
    prices = rng.integers(1, 50_000, n)
    products = rng.integers(0, 100_000, n)
    properties = [
        f'{{"plan":"{PLANS[p]}","price":{pr / 100},"product_id":"p-{pid}","quantity":{q},'
        f'"tags":["t{pid % 13}"]}}'
        for p, pr, pid, q in zip(
            plans.tolist(), prices.tolist(), products.tolist(), (products % 5).tolist(), strict=True
        )
    ]
    message_ids = [f"{day:02d}-{i:08d}-{seed}" for i in range(n)]
    ts = pa.array(stamp, pa.timestamp("us", tz="UTC"))
    received = pa.array(stamp + 40_000, pa.timestamp("us", tz="UTC"))
    page_paths = pa.array([f"/products/{p}" for p in products.tolist()], pa.string())
    null_str = pa.nulls(n, pa.string())
    schema = arrow_schema()
    context_type = schema.field("context").type

    def struct(name: str, values: dict[str, pa.Array]) -> pa.StructArray:
        t = context_type.field(name).type
        arrays = [values.get(f.name, pa.nulls(n, f.type)).cast(f.type) for f in t]
        return pa.StructArray.from_arrays(arrays, fields=list(t))

    context = pa.StructArray.from_arrays(
        [
            struct("app", {}),
            struct(
                "browser",
                {
                    "name": _choice(rng, BROWSERS, n),
                    "version": _choice(rng, ["120.0", "17.2.1", "121.1", "99"], n),
                },
            ),
            struct("campaign", {"source": _choice(rng, ["news", "google", "ads"], n)}),
            struct("device", {"type": _choice(rng, ["mobile", "desktop", "tablet"], n)}),
            pa.array(
                [
                    f"10.{a}.{b}.1"
                    for a, b in zip(
                        (user_n % 250).tolist(), (user_n // 250 % 250).tolist(), strict=True
                    )
                ],
                pa.string(),
            ),
            struct(
                "library",
                {
                    "name": _choice(rng, ["krenalis.js"], n),
                    "version": _choice(rng, ["1.0.0", "1.1.0"], n),
                },
            ),
            _choice(rng, ["en-US", "it-IT", "de-DE", "fr-FR"], n),
            struct(
                "location",
                {
                    "city": _choice(rng, ["Rome", "Paris", "Berlin", "Austin"], n),
                    "country": _choice(rng, ["IT", "FR", "DE", "US"], n),
                },
            ),
            struct("network", {}),
            struct("os", {"name": _choice(rng, OSES, n), "version": _choice(rng, ["14", "10"], n)}),
            struct(
                "page",
                {
                    "path": page_paths,
                    "title": _choice(rng, ["Product", "Home"], n),
                    "url": pc.binary_join_element_wise("https://shop.example.com", page_paths, ""),
                },
            ),
            struct("referrer", {}),
            struct(
                "screen",
                {
                    "width": pa.array(rng.choice([390, 1440, 1920], n), pa.int16()),
                    "height": pa.array(rng.choice([844, 900, 1080], n), pa.int16()),
                },
            ),
            struct(
                "session",
                {"id": pa.array(session, pa.int64()), "start": pa.array(rng.random(n) < 0.05)},
            ),
            _choice(rng, ["Europe/Rome", "America/Chicago"], n),
            _choice(rng, [f"Mozilla/5.0 (bench {i}) AppleWebKit/605.1.15" for i in range(50)], n),
        ],
        fields=list(context_type),
    )
    columns = {
        "kpid": null_str,
        "connectionId": pa.array(np.full(n, BENCH_CONNECTION), pa.int32()),
        "anonymousId": pa.array([f"anon-{u}" for u in user_n.tolist()], pa.string()),
        "channel": _choice(rng, ["web", "mobile", "server"], n),
        "category": null_str,
        "context": context,
        "event": _choice(rng, EVENT_NAMES, n),
        "groupId": null_str,
        "messageId": pa.array(message_ids, pa.string()),
        "name": null_str,
        "properties": pa.array(properties, pa.string()),
        "receivedAt": received,
        "sentAt": received,
        "originalTimestamp": ts,
        "timestamp": ts,
        "traits": pa.array(["{}"] * n, pa.string()),
        "type": pa.array(["track"] * n, pa.string()),
        "previousId": null_str,
        "userId": user_ids,
    }
    return pa.table([columns[f.name] for f in schema], schema=schema)


BLOOM_COLUMNS = ("userId", "anonymousId", "messageId", "context.session.id")


def build_lake(
    lake: Path,
    events: int,
    days: int,
    layout: str,
    row_group: int,
    files: int,
    users: int,
    seed: int,
    bloom: bool = False,
) -> None:
    """Write the lake, one day at a time."""
    options: dict = {"compression": "zstd", "row_group_size": row_group}
    if bloom:
        ndv = {"ndv": row_group, "fpp": 0.01}
        options["bloom_filter_options"] = {c: ndv for c in BLOOM_COLUMNS}
    per_day = events // days
    for day in range(days):
        table = generate_day(day, per_day, users, seed)
        if layout == "user":
            keys = pa.table(
                {
                    "u": table["userId"],
                    "s": pc.struct_field(pc.struct_field(table["context"], "session"), "id"),
                    "t": table["timestamp"],
                }
            )
            order = pc.sort_indices(
                keys, sort_keys=[("u", "ascending"), ("s", "ascending"), ("t", "ascending")]
            )
            table = table.take(order)
        date = (START + dt.timedelta(days=day)).date().isoformat()
        folder = lake / "events" / f"date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        # A bulk import writes one file per flush: each holds a random slice of the day.
        if files > 1:
            slot = np.random.default_rng(day).integers(0, files, table.num_rows)
            parts = [table.filter(pa.array(slot == i)) for i in range(files)]
        else:
            parts = [table]
        for i, part in enumerate(parts):
            pq.write_table(part, folder / f"part-{i:05d}.parquet", **options)
        print(f"  {date}: {table.num_rows} rows in {len(parts)} file(s)", flush=True)


def _condition(prop: str, operator: str, *values: str) -> dict:
    return {"property": prop, "operator": operator, "values": list(values)}


def query_shapes(lake: Path) -> dict[str, dict[str, str]]:
    """The measured requests, with values taken from the lake."""
    last = sorted((lake / "events").iterdir())[-1]
    sample = pq.read_table(next(last.glob("*.parquet")), columns=["userId", "context"]).slice(
        0, 5000
    )
    counts = [
        c for c in pc.value_counts(sample["userId"].combine_chunks()).to_pylist() if c["values"]
    ]
    user = max(counts, key=lambda c: (c["counts"], c["values"]))["values"]  # a busy user
    rare_user = min(counts, key=lambda c: (c["counts"], c["values"]))["values"]
    session = sample["context"][1].as_py()["session"]["id"]
    day = last.name.removeprefix("date=")
    day_before = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()

    def flt(logical: str, *conditions: dict) -> str:
        return json.dumps({"logical": logical, "conditions": list(conditions)})

    return {
        "latest 100": {"limit": "100"},
        "userId = X, latest 100": {"filter": flt("and", _condition("userId", "is", user))},
        "userId = rare user": {"filter": flt("and", _condition("userId", "is", rare_user))},
        "event IN (3) + 2-day window": {
            "filter": flt(
                "and",
                _condition(
                    "event", "is one of", "Order Completed", "Checkout Started", "Signed In"
                ),
                _condition(
                    "timestamp", "is between", f"{day_before}T00:00:00Z", f"{day}T23:59:59Z"
                ),
            )
        },
        "session id + day": {
            "filter": flt(
                "and",
                _condition("context.session.id", "is", str(session)),
                _condition("timestamp", "is between", f"{day}T00:00:00Z", f"{day}T23:59:59.999Z"),
            )
        },
        "json: properties.plan is pro": {
            "filter": flt("and", _condition("properties.plan", "is", "pro"))
        },
        "json: properties.price > 499.5": {
            "filter": flt("and", _condition("properties.price", "is greater than", "499.5"))
        },
        "json: properties.product_id (rare)": {
            "filter": flt("and", _condition("properties.product_id", "is", "p-4242"))
        },
        "deep paging first=100000": {"first": "100000", "limit": "100"},
        "order userId asc, limit 100": {"order": "userId", "ascending": "true"},
    }


def workspace_key(lake: Path) -> str:
    """A read key of the workspace owning the events' connection (created, with a second
    workspace owning another connection, in the lake's catalog on first use)."""
    catalog = Catalog.in_lake(lake)
    owner = catalog.workspace_of_connection(BENCH_CONNECTION)
    if owner is None:
        owner = catalog.create_workspace("Bench")
        catalog.create_connection(owner.id, connection_id=BENCH_CONNECTION)
        catalog.create_connection(catalog.create_workspace("Other").id)
    return catalog.create_api_key(owner.id, ["read"]).secret


def measure(
    url: str, params: dict[str, str], repeat: int, key: str = API_KEY
) -> tuple[list[float], int]:
    headers = {"Authorization": f"Bearer {key}"}
    times: list[float] = []
    rows = 0
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for i in range(repeat + 2):
            t0 = time.perf_counter()
            response = client.get("/v1/events", params=params)
            elapsed = (time.perf_counter() - t0) * 1000
            response.raise_for_status()
            rows = len(response.json()["events"])
            if i >= 2:  # two warm-up requests
                times.append(elapsed)
    return times, rows


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def server_url(server: subprocess.Popen, log: Path, timeout: float = 60) -> str:
    """The URL the API server logs once it listens (it was started on port 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the API server exited:\n{log.read_text()[-2000:]}")
        text = log.read_text()
        # `eventpipe serve` logs its URL once bound; uvicorn says when it accepts requests.
        found = re.search(r"serving .* on (http://127\.0\.0\.1:\d+)", text)
        if found and "Application startup complete" in text:
            return found.group(1)
        time.sleep(0.1)
    raise SystemExit(f"the API server did not start in {timeout:.0f} s")


@contextlib.contextmanager
def api_server(
    lake: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[str, psutil.Process]]:
    """`eventpipe serve --lake LAKE` in its own process: its URL and its process."""
    # Port 0: the server binds a free port itself and logs it (no race for a port picked here).
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-") as logs,
        open(Path(logs) / "server.log", "wb") as log,
    ):
        command = ["-m", "eventpipe.jobs.cli", "serve", "--lake", str(lake), "--port", "0"]
        server = subprocess.Popen(
            [sys.executable, *command], env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            url = server_url(server, Path(log.name))
            yield url, psutil.Process(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--layout", choices=["timestamp", "user"], default="timestamp")
    parser.add_argument("--row-group", type=int, default=16_384)
    parser.add_argument("--files", type=int, default=1, help="files per partition")
    parser.add_argument(
        "--bloom", action="store_true", help="write Bloom filters on " + ", ".join(BLOOM_COLUMNS)
    )
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--lake", type=Path, help="lake folder (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="measure an existing --lake")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build-only", action="store_true", help="build --lake, measure nothing")
    parser.add_argument(
        "--index", action="store_true", help="build the serving index (as compact does) first"
    )
    parser.add_argument(
        "--workspace",
        action="store_true",
        help="query with a workspace's read key (every query restricted to its connections) "
        "instead of a legacy whole-lake key",
    )
    args = parser.parse_args()

    lake = args.lake or Path(tempfile.mkdtemp(prefix="bench-api-lake-"))
    if not args.reuse:
        if lake.exists():
            shutil.rmtree(lake)
        print(
            f"building {args.events:,} events over {args.days} days in {lake} "
            f"(layout {args.layout}, row groups {args.row_group}, {args.files} file(s)/day)"
        )
        t0 = time.perf_counter()
        build_lake(
            lake,
            args.events,
            args.days,
            args.layout,
            args.row_group,
            args.files,
            args.users,
            args.seed,
            args.bloom,
        )
        print(f"built in {time.perf_counter() - t0:.0f} s")
    if args.index:
        report = index_lake(str(lake), progress=lambda line: print("  " + line, flush=True))
        print(report.line())
    if args.build_only:
        return 0
    require(
        partitioned_rows(lake / "events") > 0 and args.repeat > 0,
        f"no event in {lake}, or --repeat 0",
    )
    sizes = {name: _folder_bytes(lake / name) / 2**20 for name in ("events", INDEX)}
    ratio = sizes[INDEX] / sizes["events"] if sizes["events"] else 0.0
    print(f"lake: events {sizes['events']:.0f} MiB, {INDEX} {sizes[INDEX]:.0f} MiB ({ratio:.2f}x)")

    key = workspace_key(lake) if args.workspace else API_KEY
    print(f"key: {'a workspace read key' if args.workspace else 'a legacy key (whole lake)'}")
    env = {**os.environ, "EVENTPIPE_API_KEYS": API_KEY}
    try:
        with api_server(lake, env) as (url, process):
            print(
                f"\n{'query':38} {'rows':>5} {'p50':>8} {'p95':>8} {'p99':>8}   (ms, {args.repeat} runs)"
            )
            returned = 0
            for name, params in query_shapes(lake).items():
                times, rows = measure(url, params, args.repeat, key)
                returned += rows
                print(
                    f"{name:38} {rows:5d} {statistics.median(times):8.1f} {pct(times, 0.95):8.1f} "
                    f"{pct(times, 0.99):8.1f}",
                    flush=True,
                )
            require(returned > 0, "every query returned no event")
            rss = process.memory_info().rss / 2**20
            print(f"\nAPI process RSS after the run: {rss:.0f} MiB")
    finally:
        if not args.lake:
            shutil.rmtree(lake, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
