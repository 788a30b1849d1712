"""Files appear atomically; a killed import leaves nothing visible and is cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from eventpipe.io import lake as L
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate

from pipeline_support import kill_job_at


def _stage(lake: Path, run_id: str, pid: int, names: list[str]) -> list[tuple[str, str]]:
    L.mark_running(str(lake), run_id)
    (lake / L.STAGING / run_id / L.RUNNING).write_text(
        json.dumps({"host": os.uname().nodename, "pid": pid})
    )
    pairs = []
    for name in names:
        staged = lake / L.STAGING / run_id / "events" / "date=2026-01-01" / name
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes(b"PAR1")
        pairs.append((str(staged), str(lake / "events" / "date=2026-01-01" / name)))
    return pairs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_commit_moves_every_staged_file_and_removes_staging(tmp_path):
    pairs = _stage(tmp_path, "run1", os.getpid(), ["a.parquet", "b.parquet"])
    L.commit_files(str(tmp_path), "run1", pairs)
    assert sorted(p.name for p in (tmp_path / "events" / "date=2026-01-01").iterdir()) == [
        "a.parquet",
        "b.parquet",
    ]
    assert not (tmp_path / L.STAGING / "run1").exists()


def test_abandoned_run_before_commit_is_removed(tmp_path):
    _stage(tmp_path, "dead", _dead_pid(), ["a.parquet"])
    done = L.recover_abandoned_runs(str(tmp_path))
    assert done == ["removed the staged files of abandoned run dead"]
    assert not (tmp_path / L.STAGING / "dead").exists()
    assert not (tmp_path / "events").exists()


def test_run_killed_while_committing_is_rolled_forward(tmp_path):
    pairs = _stage(tmp_path, "dead", _dead_pid(), ["a.parquet", "b.parquet"])
    marker = tmp_path / L.STAGING / "dead" / L.COMMITTING
    marker.write_text(json.dumps(pairs))
    # It died after moving the first file.
    Path(pairs[0][1]).parent.mkdir(parents=True)
    os.rename(pairs[0][0], pairs[0][1])
    done = L.recover_abandoned_runs(str(tmp_path))
    assert done == ["completed the commit of interrupted run dead"]
    assert sorted(p.name for p in (tmp_path / "events" / "date=2026-01-01").iterdir()) == [
        "a.parquet",
        "b.parquet",
    ]
    assert not (tmp_path / L.STAGING / "dead").exists()


def test_live_run_is_left_alone(tmp_path):
    _stage(tmp_path, "live", os.getpid(), ["a.parquet"])
    assert L.recover_abandoned_runs(str(tmp_path)) == []
    assert (tmp_path / L.STAGING / "live" / "events").exists()


def _import_killed_at(moment: str, corpus: Path, lake: Path, tmp_path: Path) -> None:
    kill_job_at(moment, ["import", str(corpus / "*"), "--lake", str(lake)], tmp_path / "paused")


def _rows(lake: Path, table: str) -> int:
    return sum(pq.read_metadata(p).num_rows for p in lake.glob(f"{table}/*/*.parquet"))


def test_killed_import_leaves_no_visible_file_and_next_run_cleans_up(tmp_path):
    corpus = tmp_path / "corpus"
    manifest = generate(corpus, events=20000, seed=5)
    lake = tmp_path / "lake"
    # Killed between staging and commit: everything is staged, nothing is visible.
    _import_killed_at("before-commit", corpus, lake, tmp_path)
    assert list((lake / L.STAGING).glob("*/events/*/*.parquet"))
    assert not list((lake / L.STAGING).glob("*/" + L.COMMITTING))
    assert not list(lake.glob("events/*/*.parquet"))
    assert not list(lake.glob("failed/*/*.parquet"))
    assert not list(lake.glob("_runs/*.json"))
    # The next run removes the leftovers and imports everything once.
    assert main(["import", str(corpus / "*"), "--lake", str(lake)]) == 0
    assert [p.name for p in (lake / L.STAGING).iterdir()] == []
    [summary] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    assert summary["written"] == manifest["expected_written"]
    assert _rows(lake, "events") == manifest["expected_written"]


def test_import_killed_mid_commit_is_completed_by_the_next_run(tmp_path):
    corpus = tmp_path / "corpus"
    manifest = generate(corpus, events=20000, seed=6)
    lake = tmp_path / "lake"
    # Killed after the first rename of its commit, before the others and the delete.
    _import_killed_at("commit-renamed-first", corpus, lake, tmp_path)
    [journal] = (lake / L.STAGING).glob("*/" + L.COMMITTING)
    dead = journal.parent.name
    assert list((lake / L.STAGING / dead).rglob("*.parquet"))  # files still staged
    assert _rows(lake, "events") < manifest["expected_written"]
    # The next run completes the dead run's commit, then adds nothing twice.
    assert main(["import", str(corpus / "*"), "--lake", str(lake)]) == 0
    assert [p.name for p in (lake / L.STAGING).iterdir()] == []
    recovered = json.loads((lake / "_runs" / f"{dead}.json").read_text())
    assert recovered["status"] == "recovered"
    assert recovered["written"] == manifest["expected_written"]
    assert _rows(lake, "events") == manifest["expected_written"]


def test_ids_of_runs_started_within_one_second_sort_in_start_order():
    first = datetime(2026, 12, 4, 4, 49, 6, 999, tzinfo=UTC)
    later = [first + timedelta(microseconds=n) for n in (1, 500, 998_000)]
    for _ in range(50):  # the random suffix never decides the order
        ids = [L.time_ordered_id(t) for t in [first, *later]]
        assert sorted(ids) == ids
        assert len(set(ids)) == len(ids)
