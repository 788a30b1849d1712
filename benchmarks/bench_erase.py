"""`eventpipe erase` of one user over an imported, compacted (indexed) lake: wall and CPU
seconds of the job, and lake events searched per CPU-second.

    python benchmarks/bench_erase.py --events 200000 [--workdir DIR --reuse]

Builds the lake once (generate, import, identity, compact), then erases the userId with the
most events and one of median count, a fresh copy of the lake per repeat. Prints the load average beside the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from measured import partitioned_rows, require

EVENTPIPE = [sys.executable, "-m", "eventpipe.jobs.cli"]


def _run(*args: str) -> None:
    subprocess.run(
        [*EVENTPIPE, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(work: Path, events: int, reuse: bool) -> Path:
    lake = work / "lake"
    if reuse and (lake / "events").is_dir():
        return lake
    shutil.rmtree(work, ignore_errors=True)
    _run("generate", "--events", str(events), "--out", str(work / "corpus"), "--seed", "7")
    _run("import", str(work / "corpus" / "*"), "--lake", str(lake), "--no-enrich")
    _run("identity", "--lake", str(lake))
    _run("compact", "--lake", str(lake))
    return lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="reuse the lake of --workdir")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-erase-"))
    lake = build(work, args.events, args.reuse)
    rows = partitioned_rows(lake / "events")
    require(rows > 0, "the lake holds no event")
    counts = duckdb.sql(
        f"SELECT userId, count(*) AS n, count(DISTINCT CAST(timestamp AS DATE)) AS days "
        f"FROM read_parquet('{lake}/events/*/*.parquet') WHERE userId IS NOT NULL "
        "GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    print(f"lake: {rows:,} events, {len(counts):,} userIds")
    for user, events, days in (counts[0], counts[len(counts) // 2]):
        for repeat in range(args.repeats):
            copy = work / f"copy-{repeat}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(lake, copy)
            cpu, started = _children_cpu(), time.monotonic()
            _run("erase", "--lake", str(copy), "--user-id", user, "--landing-wait", "0")
            wall, used = time.monotonic() - started, _children_cpu() - cpu
            load = os.getloadavg()
            print(
                f"erase a userId of {events} events on {days} days: {wall:.2f} s wall, "
                f"{used:.2f} CPU-s, {rows / used:,.0f} lake events per CPU-s "
                f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
            )
            shutil.rmtree(copy)


if __name__ == "__main__":
    main()
