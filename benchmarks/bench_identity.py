"""Benchmark of the identity graph build (`build_identity` + `write_identity`) at scale.

Generates a lake of event-like Parquet files (only the identity columns) with realistic
shapes, vectorised with numpy/pyarrow:
- every anonymous id (a UUID) has an anonymous page view; 90% of them then identify as
  one user (user ids reused, ~2.4 devices per user) and keep sending events as that
  user; 5% of those later identify as a second user (a conflict);
- every user has a server-side event (userId only); 3% of users were aliased from a
  legacy id, 0.5% are aliased into another user (merging two identified profiles), and
  `--chains` alias chains of `--chain-length` ids each;
- 1% of the events carry placeholder ids ("anonymous", "null", "", " Guest ").

The build runs in a child process; its wall time, CPU time (user + system) and peak
RSS (from `os.wait4`) are printed with the DuckDB memory limit. A script, not a test:

    .venv/bin/python benchmarks/bench_identity.py [--anonymous 8000000] [--users 3000000]
        [--memory-limit 1GB] [--threads 2] [--lake DIR --keep] [--no-stitch]

A second child then loads the kpid map (`read_kpid_map`) and re-stitches one day's
events (`assign_kpids`, i.e. `KpidStitcher`): what re-stitching a partition costs.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from measured import require

DAY_US = 86_400_000_000
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
CHUNK = 1_000_000  # anonymous ids per generated chunk (bounds the generator's memory)
PLACEHOLDER_VALUES = ["anonymous", "null", "", " Guest "]


def _strings(chars: np.ndarray) -> pa.Array:
    """An Arrow string array from an (n, width) uint8 array of ASCII characters."""
    n, width = chars.shape
    offsets = pa.py_buffer(np.arange(0, (n + 1) * width, width, dtype=np.int32).tobytes())
    return pa.StringArray.from_buffers(n, offsets, pa.py_buffer(np.ascontiguousarray(chars)))


def numbered_ids(prefix: str, numbers: np.ndarray, width: int = 9) -> pa.Array:
    """prefix + zero-padded decimal, e.g. user-000001234."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (numbers[:, None] // powers) % 10 + ord("0")
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    chars = np.hstack([np.broadcast_to(head, (len(numbers), len(head))), digits.astype(np.uint8)])
    return _strings(chars)


def uuid_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """Random UUID-shaped ids (36 characters)."""
    nibbles = rng.integers(0, 16, size=(n, 32), dtype=np.uint8)
    hex_chars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nibbles]
    dash = np.full((n, 1), ord("-"), dtype=np.uint8)
    parts = [hex_chars[:, 0:8], dash, hex_chars[:, 8:12], dash, hex_chars[:, 12:16], dash,
             hex_chars[:, 16:20], dash, hex_chars[:, 20:32]]  # fmt: skip
    return _strings(np.hstack(parts))


def events_table(kind: str, anon, user, previous, micros: np.ndarray) -> pa.Table:
    n = len(micros)

    def column(values) -> pa.Array:
        return pa.nulls(n, pa.string()) if values is None else values

    return pa.table(
        {
            "type": pa.array(np.full(n, kind, dtype=object), pa.string()),
            "anonymousId": column(anon),
            "userId": column(user),
            "previousId": column(previous),
            "timestamp": pa.array(micros, pa.timestamp("us", tz="UTC")),
        }
    )


def with_placeholders(rng: np.random.Generator, ids: pa.Array, share: float) -> pa.Array:
    """`ids` with a `share` of them replaced by placeholder values."""
    hit = rng.random(len(ids)) < share
    choices = pa.array(PLACEHOLDER_VALUES)
    replacement = choices.take(pa.array(rng.integers(0, len(PLACEHOLDER_VALUES), len(ids))))
    return pc.if_else(pa.array(hit), replacement, ids)


class LakeWriter:
    """Writes event tables into LAKE/events/date=YYYY-MM-DD/ files, one file per call."""

    def __init__(self, lake: str) -> None:
        self.lake = lake
        self.files = 0
        self.rows = 0

    def write(self, table: pa.Table, day: int) -> None:
        folder = os.path.join(self.lake, "events", f"date=2026-01-{day % 28 + 1:02d}")
        os.makedirs(folder, exist_ok=True)
        self.files += 1
        pq.write_table(table, os.path.join(folder, f"part-{self.files:05d}.parquet"),
                       compression="zstd", row_group_size=16_384)  # fmt: skip
        self.rows += table.num_rows


def generate(lake: str, anonymous: int, users: int, chains: int, chain_length: int) -> dict:
    """Write the synthetic lake; return what it holds."""
    rng = np.random.default_rng(7)
    out = LakeWriter(lake)
    for chunk, start in enumerate(range(0, anonymous, CHUNK)):
        n = min(CHUNK, anonymous - start)
        day_start = START_US + (chunk % 28) * DAY_US
        anon = uuid_ids(rng, n)
        seen = day_start + rng.integers(0, DAY_US // 2, n)
        out.write(events_table("page", with_placeholders(rng, anon, 0.01), None, None, seen), chunk)
        identified = rng.random(n) < 0.9
        who = rng.integers(0, users, n)
        login = seen + rng.integers(1, 3_600_000_000, n)
        keep = pa.array(identified)
        ident_anon, ident_user = anon.filter(keep), numbered_ids("user-", who[identified])
        out.write(events_table("identify", ident_anon, with_placeholders(rng, ident_user, 0.01),
                               None, login[identified]), chunk)  # fmt: skip
        later = login[identified] + rng.integers(1, 3_600_000_000, len(ident_anon))
        out.write(events_table("track", ident_anon, ident_user, None, later), chunk)
        second = rng.random(len(ident_anon)) < 0.05
        other = numbered_ids("user-", rng.integers(0, users, int(second.sum())))
        out.write(events_table("identify", ident_anon.filter(pa.array(second)), other, None,
                               later[second] + 1_000_000), chunk)  # fmt: skip
    for chunk, start in enumerate(range(0, users, CHUNK)):
        numbers = np.arange(start, min(start + CHUNK, users))
        micros = START_US + rng.integers(0, 28 * DAY_US, len(numbers))
        out.write(events_table("track", None, numbered_ids("user-", numbers), None, micros), chunk)
    aliased = rng.choice(users, int(users * 0.03), replace=False)
    legacy = numbered_ids("legacy-", np.arange(len(aliased)))
    out.write(events_table("alias", None, numbered_ids("user-", aliased), legacy,
                           START_US + rng.integers(0, 28 * DAY_US, len(aliased))), 0)  # fmt: skip
    merged = rng.choice(users, (int(users * 0.005), 2))
    out.write(events_table("alias", None, numbered_ids("user-", merged[:, 0]),
                           numbered_ids("user-", merged[:, 1]),
                           START_US + rng.integers(0, 28 * DAY_US, len(merged))), 1)  # fmt: skip
    links = np.arange(chains * chain_length)
    chain_of, step = links // chain_length, links % chain_length
    out.write(events_table("alias", None,
                           numbered_ids("chain-", chain_of * 1000 + step + 1, 12),
                           numbered_ids("chain-", chain_of * 1000 + step, 12),
                           START_US + step * 60_000_000), 2)  # fmt: skip
    ids = distinct_ids(anonymous, users, chains, chain_length)
    return {"event_rows": out.rows, "files": out.files, "distinct_ids_generated": ids}


def distinct_ids(anonymous: int, users: int, chains: int, chain_length: int) -> int:
    """Distinct ids `generate` writes: anonymous, users, legacy (aliased) and chain ids."""
    return anonymous + users + int(users * 0.03) + chains * (chain_length + 1)


def existing_lake(lake: str, args: argparse.Namespace) -> dict:
    """The shape of a lake `generate` wrote earlier with the same arguments."""
    files = glob.glob(os.path.join(lake, "events", "date=*", "*.parquet"))
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    ids = distinct_ids(args.anonymous, args.users, args.chains, args.chain_length)
    return {"event_rows": rows, "files": len(files), "distinct_ids_generated": ids}


def run_build(lake: str, memory_limit: str, threads: int) -> None:
    """The measured child: build the graph from the lake's events and write it."""
    from eventpipe.identity import build_identity, identity_connection, write_identity
    from eventpipe.io.lake_transaction import LakeTransaction

    spill = os.path.join(lake, "_spill")
    con = identity_connection(memory_limit, spill, threads)
    started = time.perf_counter()
    result = build_identity(con, os.path.join(lake, "events", "date=*", "*.parquet"))
    built = time.perf_counter()
    txn = LakeTransaction.begin(lake, "bench-identity", "identity")
    write_identity(txn, result)
    txn.commit()
    report = {
        "counts": result.counts,
        "rounds": result.rounds,
        "step_seconds": result.seconds,
        "build_seconds": round(built - started, 2),
        "write_seconds": round(time.perf_counter() - built, 2),
    }
    print(json.dumps(report))


def run_stitch(lake: str, memory_limit: str, threads: int) -> None:
    """A measured child: load the kpid map, re-stitch one day's events (`assign_kpids`)."""
    from eventpipe.identity import assign_kpids, identity_connection, read_kpid_map

    con = identity_connection(memory_limit, os.path.join(lake, "_spill"), threads)
    day = pq.read_table(sorted(glob.glob(os.path.join(lake, "events", "date=*")))[0])
    started = time.perf_counter()
    kpid_map = read_kpid_map(lake)
    loaded = time.perf_counter()
    stitched = assign_kpids(con, day, kpid_map)
    report = {
        "kpid_map_rows": kpid_map.num_rows,
        "kpid_map_arrow_mb": round(kpid_map.nbytes / 2**20),
        "load_seconds": round(loaded - started, 2),
        "partition_rows": day.num_rows,
        "stitch_seconds": round(time.perf_counter() - loaded, 2),
        "events_with_kpid": stitched.num_rows - stitched["kpid"].null_count,
    }
    print(json.dumps(report))


def measured(args: list[str]) -> tuple[dict, dict]:
    """Run this script as a child with `args`: its JSON report and its resource use."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    resources = {
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),  # Linux: KiB
    }
    if child.returncode:
        return {"failed": f"exit code {child.returncode} (its error is above)"}, resources
    return json.loads(output.strip().splitlines()[-1]), resources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--anonymous", type=int, default=8_000_000, help="anonymous ids")
    parser.add_argument("--users", type=int, default=3_000_000, help="user ids")
    parser.add_argument("--chains", type=int, default=1000, help="alias chains")
    parser.add_argument("--chain-length", type=int, default=20, help="aliases per chain")
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    parser.add_argument("--lake", help="lake folder (default: a temporary one)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary lake (a --lake is always kept)"
    )
    parser.add_argument(
        "--reuse-lake", action="store_true", help="use --lake's events if it has some"
    )
    parser.add_argument("--no-stitch", action="store_true", help="skip the stitch benchmark")
    parser.add_argument("--build-only", metavar="LAKE", help=argparse.SUPPRESS)
    parser.add_argument("--stitch-only", metavar="LAKE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        run_build(args.build_only, args.memory_limit, args.threads)
        return
    if args.stitch_only:
        run_stitch(args.stitch_only, args.memory_limit, args.threads)
        return
    lake = args.lake or tempfile.mkdtemp(prefix="bench-identity-")
    try:
        started = time.perf_counter()
        if args.reuse_lake and os.path.isdir(os.path.join(lake, "events")):
            shape = existing_lake(lake, args)
        else:
            shape = generate(lake, args.anonymous, args.users, args.chains, args.chain_length)
            shape["generate_seconds"] = round(time.perf_counter() - started, 1)
        print("lake:", json.dumps(shape), flush=True)
        settings = ["--memory-limit", args.memory_limit, "--threads", str(args.threads)]
        report, resources = measured(["--build-only", lake, *settings])
        print("build:", json.dumps(report))
        if "failed" in report:
            raise SystemExit(f"build {report['failed']}")
        ids = report["counts"]["users"] + report["counts"]["anonymous"]
        require(shape["event_rows"] > 0 and ids > 0, f"no event or id to resolve ({shape})")
        print(
            f"identity build + write of {shape['event_rows']:,} events, "
            f"{shape['distinct_ids_generated']:,} distinct ids ({ids:,} with a profile): "
            f"wall {resources['wall_seconds']} s, CPU {resources['cpu_seconds']} s, "
            f"peak RSS {resources['peak_rss_mb']} MB, DuckDB memory_limit {args.memory_limit}, "
            f"{args.threads} threads"
        )
        if not args.no_stitch:
            stitch, stitch_resources = measured(["--stitch-only", lake, *settings])
            print("stitch one day:", json.dumps(stitch), json.dumps(stitch_resources))
    finally:
        if args.lake is None and not args.keep:
            shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
