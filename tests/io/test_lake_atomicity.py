"""Files appear atomically; a killed import leaves nothing visible and is cleaned up."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventpipe.core.ids import time_ordered_id
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
        ids = [time_ordered_id(t) for t in [first, *later]]
        assert sorted(ids) == ids
        assert len(set(ids)) == len(ids)


# (case, journal: None | "list" (older form) | "dict", owner: "dead" | "live" | "other host",
#  dry_run) -> (notes, staging kept, files visible after)
RECOVERY_CASES = [
    ("dead, no journal", None, "dead", False, ["removed the staged files of abandoned run r"], False, 0),
    ("dead, journal", "dict", "dead", False, ["completed the commit of interrupted run r"], False, 2),
    ("dead, older journal", "list", "dead", False, ["completed the commit of interrupted run r"], False, 2),
    ("dry run, no journal", None, "dead", True, ["would have removed the staged files of abandoned run r"], True, 0),
    ("dry run, journal", "dict", "dead", True, ["would have completed the commit of interrupted run r"], True, 0),
    ("live run", "dict", "live", False, [], True, 0),
    ("run of another host", "dict", "other host", False, [], True, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "journal", "owner", "dry_run", "notes", "kept", "visible"),
    RECOVERY_CASES,
    ids=[c[0] for c in RECOVERY_CASES],
)
def test_recovery_of_abandoned_runs(tmp_path, case, journal, owner, dry_run, notes, kept, visible):
    pid = os.getpid() if owner == "live" else _dead_pid()
    pairs = _stage(tmp_path, "r", pid, ["a.parquet", "b.parquet"])
    host = "elsewhere" if owner == "other host" else os.uname().nodename
    running = {"host": host, "pid": pid, "job": "import"}
    (tmp_path / L.STAGING / "r" / L.RUNNING).write_text(json.dumps(running))
    counts = {"written": 2, "failed": 1}
    if journal:
        body = pairs if journal == "list" else {"run": "r", "add": pairs, "counts": counts}
        (tmp_path / L.STAGING / "r" / L.COMMITTING).write_text(json.dumps(body))
    assert L.recover_abandoned_runs(str(tmp_path), "by-run", dry_run) == notes
    assert (tmp_path / L.STAGING / "r").exists() == kept
    assert len(list(tmp_path.glob("events/*/*.parquet"))) == visible
    ledger = tmp_path / L.RUNS / "r.json"
    if visible:  # the recovered commit is in the ledger, with the dead run's counts
        record = {"run_id": "r", "job": "import", "status": "recovered", "recovered_by": "by-run"}
        assert json.loads(ledger.read_text()) == record | (counts if journal == "dict" else {})
    else:
        assert not ledger.exists()


def test_a_run_marks_itself_running_with_its_host_pid_and_job(tmp_path):
    L.mark_running(str(tmp_path), "run1", "compact")
    owner = json.loads((tmp_path / L.STAGING / "run1" / L.RUNNING).read_text())
    assert owner == {"host": socket.gethostname(), "pid": os.getpid(), "job": "compact"}
    assert L.recover_abandoned_runs(str(tmp_path)) == []


def test_a_visible_event_file_always_has_its_archive(tmp_path, monkeypatch):
    """The commit renames raw files first: paused after its first rename, only raw/ shows."""
    lake = tmp_path / "lake"
    pairs = []
    for table in ("events", "failed", "raw"):
        staged = lake / L.STAGING / "run1" / table / "date=2026-01-01" / "a.parquet"
        staged.parent.mkdir(parents=True)
        staged.write_bytes(b"PAR1")
        pairs.append((str(staged), str(lake / table / "date=2026-01-01" / "a.parquet")))
    marker = tmp_path / "paused"
    monkeypatch.setenv(L.PAUSE_AT, "commit-renamed-first")
    monkeypatch.setenv(L.PAUSE_FILE, str(marker))
    commit = threading.Thread(
        target=L.commit_files, args=(str(lake), "run1", pairs), kwargs={"counts": {"written": 1}}
    )
    commit.start()
    while not marker.exists():
        assert commit.is_alive(), "the commit ended without pausing"
        time.sleep(0.01)
    visible = sorted(p.relative_to(lake).parts[0] for p in lake.glob("*/*/*.parquet"))
    journal = json.loads((lake / L.STAGING / "run1" / L.COMMITTING).read_text())
    marker.unlink()
    commit.join()
    assert visible == ["raw"]
    # The journal a recovery would complete: raw first, and the counts for the ledger.
    assert journal == {
        "run": "run1",
        "add": [list(pairs[2]), list(pairs[0]), list(pairs[1])],
        "replace": [],
        "counts": {"written": 1},
    }
    assert sorted(p.relative_to(lake).parts[0] for p in lake.glob("*/*/*.parquet")) == [
        "events",
        "failed",
        "raw",
    ]
    assert not (lake / L.STAGING / "run1").exists()


def test_a_run_summary_is_written_to_the_ledger(tmp_path):
    path = L.write_run_summary(str(tmp_path), "run1", {"written": 3, "when": datetime(2026, 1, 1)})
    assert path == str(tmp_path / L.RUNS / "run1.json")
    assert json.loads(Path(path).read_text()) == {"written": 3, "when": "2026-01-01 00:00:00"}


def test_a_run_id_is_its_start_time_then_a_random_suffix():
    run_id = time_ordered_id(datetime(2026, 12, 4, 4, 49, 6, 999, tzinfo=UTC))
    assert re.fullmatch(r"20261204T044906000999Z-[0-9a-f]{6}", run_id), run_id


def test_lake_files_are_zstd_with_dictionaries_only_where_values_repeat(tmp_path):
    """Failed and raw rows: the record texts are not dictionary-encoded, the rest is."""
    failed = pa.table({"reason": ["invalid_value"] * 3, "raw": ["a", "b", "c"]})
    path = str(tmp_path / "failed" / "date=2026-01-01" / "0.parquet")
    L.write_parquet(failed, path, event_table=False)
    chunks = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {chunks.column(i).path_in_schema: chunks.column(i).encodings for i in range(2)}
    assert "RLE_DICTIONARY" in encodings["reason"]
    assert "RLE_DICTIONARY" not in encodings["raw"]
    assert {chunks.column(i).compression for i in range(2)} == {"ZSTD"}
    assert L.read_parquet(path, ["raw"]).to_pylist() == [{"raw": r} for r in "abc"]
    assert L.read_parquet(path).equals(failed)


def test_recovery_goes_on_past_a_live_run_and_records_a_marker_without_job(tmp_path):
    """Every abandoned run is handled, whatever is sorted before it."""
    _stage(tmp_path, "a-live", os.getpid(), ["a.parquet"])
    _stage(tmp_path, "b-dead", _dead_pid(), ["b.parquet"])
    pairs = _stage(tmp_path, "c-dead", _dead_pid(), ["c.parquet"])
    running = {"host": os.uname().nodename, "pid": _dead_pid()}  # written before jobs were named
    (tmp_path / L.STAGING / "c-dead" / L.RUNNING).write_text(json.dumps(running))
    (tmp_path / L.STAGING / "c-dead" / L.COMMITTING).write_text(json.dumps(pairs))
    assert L.recover_abandoned_runs(str(tmp_path)) == [
        "removed the staged files of abandoned run b-dead",
        "completed the commit of interrupted run c-dead",
    ]
    ledger = json.loads((tmp_path / L.RUNS / "c-dead.json").read_text())
    assert ledger == {"run_id": "c-dead", "job": "", "status": "recovered", "recovered_by": ""}
    assert (tmp_path / L.STAGING / "a-live").exists()
