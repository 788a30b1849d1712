"""The landing log: durable segments, rotation by age and size, the writer's lock, a dead
writer's segment (torn last line), and the import's ledger committed with its events."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import duckdb
import orjson
import pytest
from collector_support import make_event

from eventpipe.collector.requests import envelope_line
from eventpipe.io.landing import SegmentWriter, claim_closed_segments, done_segments
from eventpipe.jobs.cli import main

from pipeline_support import kill_job_at


def envelope(connection: int = 5, **event: object) -> bytes:
    body = orjson.dumps({"batch": [make_event(**event)]})
    return envelope_line("2026-12-01T10:00:01+00:00", "203.0.113.7", connection, body)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_segments_close_by_age_even_when_idle_and_by_size(tmp_path: Path) -> None:
    clock = FakeClock()
    line = envelope()
    writer = SegmentWriter(
        str(tmp_path), segment_seconds=60, segment_bytes=3 * len(line), clock=clock
    )
    assert writer.due_in() is None  # nothing open: nothing to wait for
    writer.append(line)
    [open_name] = names(tmp_path)
    assert open_name.endswith(".jsonl.open")
    clock.now = 59.0
    assert writer.due_in() == 1.0
    writer.close_if_due()
    assert names(tmp_path) == [open_name]
    clock.now = 60.0
    writer.close_if_due()  # the timer, with no new request
    assert names(tmp_path) == [open_name.removesuffix(".open")]
    for _ in range(4):  # 3 lines fit a segment: the 4th opens another
        writer.append(line)
    writer.close()
    closed = names(tmp_path)
    assert len(closed) == 3 and all(n.endswith(".jsonl") for n in closed)
    sizes = [len((tmp_path / n).read_bytes()) for n in closed]
    assert sizes == [len(line), 3 * len(line), len(line)]


def test_an_open_segment_of_a_live_writer_is_not_claimed(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    writer = SegmentWriter(str(lake / "landing"))
    writer.append(envelope())
    assert claim_closed_segments(str(lake)).paths == []
    writer.close()
    assert len(claim_closed_segments(str(lake)).paths) == 1


def test_a_dead_writers_segment_is_claimed_and_its_torn_line_set_aside(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    folder = lake / "landing"
    folder.mkdir(parents=True)
    whole = envelope()
    torn = envelope()[:40]  # a write cut short: never acknowledged
    dead = folder / "20261201T100000000000Z-abc-1.jsonl.open"
    dead.write_bytes(whole + torn)
    live = folder / "20261201T100001000000Z-abc-2.jsonl.open"
    live.write_bytes(whole)
    fd = os.open(live, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # its writer is alive
    try:
        claimed = claim_closed_segments(str(lake))
    finally:
        os.close(fd)
    assert [Path(p).name for p in claimed.paths] == [dead.name.removesuffix(".open")]
    assert (folder / dead.name.removesuffix(".open")).read_bytes() == whole
    assert (
        folder / "torn" / (dead.name.removesuffix(".jsonl.open") + ".tail")
    ).read_bytes() == torn
    assert len(claimed.torn) == 1 and "40 bytes" in claimed.torn[0]
    assert live.exists()


def test_import_reports_the_torn_line_and_imports_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    folder = lake / "landing"
    folder.mkdir(parents=True)
    (folder / "20261201T100000000000Z-abc-1.jsonl.open").write_bytes(envelope() + envelope()[:25])
    assert main(["import", "--landing", "--lake", str(lake), "--no-enrich"]) == 0
    out = capsys.readouterr().out
    assert "1 torn last lines skipped" in out
    assert "read 1 = written 1 + failed 0 + duplicates 0" in out
    [run] = (lake / "_runs").glob("*.json")
    assert len(json.loads(run.read_text())["landing"]["torn"]) == 1


def _land(lake: Path, n: int) -> set[str]:
    writer = SegmentWriter(str(lake / "landing"))
    ids = set()
    for _ in range(n):
        event = make_event()
        ids.add(event["messageId"])
        writer.append(envelope_line("2026-12-01T10:00:01+00:00", None, 5, orjson.dumps([event])))
    writer.close()
    return ids


def _stored(lake: Path) -> list[str]:
    return [
        m
        for (m,) in duckdb.sql(
            f"SELECT messageId FROM read_parquet('{lake}/events/*/*.parquet')"
        ).fetchall()
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("moment", "done_by_the_killed_run"),
    [("before-commit", False), ("commit-renamed-first", True)],
)
def test_a_segment_is_done_iff_the_run_that_imported_it_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], moment: str, done_by_the_killed_run: bool
) -> None:
    lake = tmp_path / "lake"
    ids = _land(lake, 20)
    args = ["import", "--landing", "--lake", str(lake), "--no-enrich"]
    kill_job_at(moment, args, tmp_path / "paused")
    assert done_segments(str(lake)) == set()  # the ledger is not visible before the commit
    assert main(args) == 0  # recovers the killed run first (finishes its commit or drops it)
    out = capsys.readouterr().out
    if done_by_the_killed_run:
        assert "0 closed segments to import, 1 already imported" in out
    else:
        assert "1 closed segments to import, 0 already imported" in out
        assert "read 20 = written 20 + failed 0 + duplicates 0" in out
    assert sorted(_stored(lake)) == sorted(ids)
    assert len(done_segments(str(lake))) == 1
    assert list((lake / "landing").glob("*.jsonl")) == []
    assert main(args) == 0  # nothing left: no run, and nothing left staged for a recovery
    assert "0 closed segments to import, 0 already imported" in capsys.readouterr().out
    assert not (lake / "_staging").exists() or not any((lake / "_staging").iterdir())


def test_a_failed_append_leaves_no_half_line_and_the_next_goes_to_a_new_segment(
    tmp_path: Path,
) -> None:
    import resource
    import signal

    line = envelope()
    writer = SegmentWriter(str(tmp_path))
    writer.append(line)
    [first] = list(tmp_path.iterdir())
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(line) + len(line) // 2, hard))
    try:
        with pytest.raises(OSError):  # the file may grow by half a line only: EFBIG
            writer.append(envelope())
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    closed = tmp_path / first.name.removesuffix(".open")
    assert closed.read_bytes() == line  # cut back to the acknowledged lines, and closed
    writer.append(line)
    writer.close()
    assert len(list(tmp_path.glob("*.jsonl"))) == 2


def test_an_empty_new_segment_of_a_dead_writer_is_removed_once_stale(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    folder = lake / "landing"
    folder.mkdir(parents=True)
    stale = folder / "20261201T100000000000Z-abc-1.jsonl.new"
    fresh = folder / "20261201T100001000000Z-abc-2.jsonl.new"
    stale.touch()
    fresh.touch()
    os.utime(stale, (0, 0))
    assert claim_closed_segments(str(lake)).paths == []
    assert not stale.exists() and fresh.exists()


def test_one_folder_fsync_for_every_writer() -> None:
    """A folder is made durable by one helper (`core.files.fsync_folder`), not a copy per writer:
    no other function opens a folder read-only to fsync it."""
    import ast

    package = Path(__file__).resolve().parents[2] / "eventpipe"
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                text = ast.unparse(node)
                if "os.O_RDONLY" in text and "os.fsync(" in text:
                    found.append(f"{path.relative_to(package)}:{node.name}")
    assert found == ["core/files.py:fsync_folder"]
