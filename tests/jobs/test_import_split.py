"""One big JSONL file read in byte ranges: the same lake with 1 and 2 workers, exact lines."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import orjson
import pytest

from eventpipe.io.raw_files import plan_reads
from eventpipe.jobs.cli import main
from eventpipe.jobs.common import LOCAL_SPLIT_BYTES, local_worker_args
from tests.support.pipeline_support import make_event

BIG = 10 * LOCAL_SPLIT_BYTES
CHUNK_MB = 0.02  # ~21 KB chunks: the ~0.5 MB file below is read in ~25 ranges


def write_input(path: Path, n: int = 2500) -> tuple[list[int], int]:
    """A JSONL file of `n` lines (CRLF, blank and bad lines among them): the line
    numbers of the bad ones, and how many events it holds."""
    bad: list[int] = []
    good = 0
    lines = []
    for i in range(1, n + 1):
        if i % 97 == 0:
            lines.append(b'{"type": "track", "anonymousId": "a"}')  # no event name
            bad.append(i)
        elif i % 251 == 0:
            lines.append(b'{"type": "track", "event": ')  # not JSON
            bad.append(i)
        elif i % 113 == 0:
            lines.append(b"   ")
        else:
            day = 1 + i % 5
            event = make_event(
                messageId=f"m-{i}",
                anonymousId=f"anon-{i % 40}",
                timestamp=f"2026-11-0{day}T10:00:00.{i % 1000:03d}Z",
                properties={"i": i, "pad": "p" * (i % 50)},
            )
            lines.append(orjson.dumps(event) + (b"\r" if i % 7 == 0 else b""))
            good += 1
    path.write_bytes(b"\n".join(lines) + b"\n")
    return bad, good


def import_into(lake: Path, source: Path, *extra: str) -> dict:
    args = ["import", str(source), "--lake", str(lake), "--chunk-mb", str(CHUNK_MB)]
    assert main([*args, "--connection-id", "7", *extra]) == 0
    [summary] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    return summary


def differences(con: duckdb.DuckDBPyConnection, table: str, a: Path, b: Path, drop: str) -> int:
    """Rows of `table` in one lake and not the other, both ways (EXCEPT ALL)."""
    read = "SELECT * EXCLUDE ({drop}) FROM read_parquet('{lake}/{table}/*/*.parquet', hive_partitioning=true)"
    one, two = (read.format(drop=drop, lake=lake, table=table) for lake in (a, b))
    return sum(
        con.execute(f"SELECT count(*) FROM (({x}) EXCEPT ALL ({y}))").fetchone()[0]
        for x, y in ((one, two), (two, one))
    )


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> tuple[Path, Path, Path, list[int], int]:
    work = tmp_path_factory.mktemp("split")
    source = work / "big.jsonl"
    bad, good = write_input(source)
    one, two = work / "lake-1", work / "lake-2"
    import_into(one, source, "--workers", "1")
    import_into(two, source, "--workers", "2")
    return source, one, two, bad, good


def test_the_file_is_read_in_many_ranges(lakes):
    source = lakes[0]
    reads = plan_reads([(str(source), source.stat().st_size)], int(CHUNK_MB * 2**20))
    assert len(reads) > 10


def test_failed_rows_name_their_exact_lines(lakes):
    _, one, _, bad, _ = lakes
    con = duckdb.connect()
    rows = con.sql(
        f"SELECT line, reason FROM read_parquet('{one}/failed/*/*.parquet') ORDER BY line"
    ).fetchall()
    assert [line for line, _ in rows] == bad
    assert {reason for _, reason in rows} == {"missing_property", "invalid_json"}


def test_one_and_two_workers_give_the_same_lake(lakes):
    _, one, two, bad, good = lakes
    for lake in (one, two):
        summary = json.loads(next((lake / "_runs").glob("*.json")).read_text())
        assert (summary["read"], summary["written"], summary["failed"]) == (
            good + len(bad),
            good,
            len(bad),
        )
    con = duckdb.connect()
    assert differences(con, "events", one, two, "date") == 0
    assert differences(con, "failed", one, two, "date, runId, receivedAt") == 0
    assert differences(con, "raw", one, two, "date") == 0


@pytest.mark.parametrize(
    ("args", "workers", "size", "expected"),
    [
        ([], None, BIG, ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]),
        ([], None, LOCAL_SPLIT_BYTES, []),  # small: in this process, no worker start-up
        ([], 1, BIG, []),
        ([], 3, 1, ["--direct_running_mode=multi_processing", "--direct_num_workers=3"]),
        (["--runner=DataflowRunner"], 4, BIG, ["--runner=DataflowRunner"]),
        (["--direct_num_workers=1"], None, BIG, ["--direct_num_workers=1"]),
    ],
)
def test_local_runs_use_the_cores_unless_told(args, workers, size, expected, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert local_worker_args(args, workers, size) == expected
