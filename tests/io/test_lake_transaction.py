"""The one lake transaction: stage, add, replace, delete, record, commit, recover."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from eventpipe.io import lake as L
from eventpipe.io import lake_transaction as T
from eventpipe.io.lake_transaction import (
    LakeBusy,
    LakeTransaction,
    read_commit,
    recover_transactions,
)

DAY = "date=2026-01-01"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _stage(txn: LakeTransaction, table: str, name: str, body: bytes = b"new") -> tuple[str, str]:
    staged = Path(txn.staged_path(table, DAY, name))
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(body)
    return str(staged), str(Path(txn.lake) / table / DAY / name)


def _partition(lake: Path, table: str, *names: str) -> Path:
    folder = lake / table / DAY
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"old")
    return folder


def _own(lake: Path, txn_id: str, pid: int, host: str | None = None, job: str = "import") -> None:
    owner = {"host": host or socket.gethostname(), "pid": pid, "job": job}
    (lake / L.STAGING / txn_id).mkdir(parents=True, exist_ok=True)
    (lake / L.STAGING / txn_id / T.OWNER).write_text(json.dumps(owner))


def test_begin_names_the_owner_and_staging_is_invisible(tmp_path):
    txn = LakeTransaction.begin(str(tmp_path), "t1", "import")
    owner = json.loads((tmp_path / L.STAGING / "t1" / T.OWNER).read_text())
    assert owner == {"host": socket.gethostname(), "pid": os.getpid(), "job": "import"}
    _stage(txn, "events", "a.parquet")
    assert not list(tmp_path.glob("events/*/*.parquet"))
    assert txn.staged_path("events", "x") == str(tmp_path / L.STAGING / "t1" / "events" / "x")


def test_commit_adds_every_file_removes_staging_and_keeps_no_record_without_metadata(tmp_path):
    txn = LakeTransaction.begin(str(tmp_path), "t1")
    for name in ("a.parquet", "b.parquet"):
        txn.add(*_stage(txn, "events", name))
    record = txn.commit()
    assert _names(tmp_path / "events" / DAY) == ["a.parquet", "b.parquet"]
    assert not (tmp_path / L.STAGING / "t1").exists()
    assert not (tmp_path / T.LOG).exists()
    assert read_commit(str(tmp_path), "t1") is None
    assert record["id"] == "t1" and record["metadata"] == {}


def test_recorded_metadata_is_readable_after_commit(tmp_path):
    txn = LakeTransaction.begin(str(tmp_path), "t1")
    txn.add(*_stage(txn, "events", "a.parquet"))
    txn.record("landing_segments", ["seg-1", "seg-2"])
    txn.record(T.SUMMARY, {"written": 3})
    txn.commit()
    assert read_commit(str(tmp_path), "t1") == {
        "landing_segments": ["seg-1", "seg-2"],
        T.SUMMARY: {"written": 3},
    }
    assert read_commit(str(tmp_path), "other") is None


def test_the_commit_record_is_written_before_anything_is_visible(tmp_path, monkeypatch):
    """Paused after its first rename: the record is there, raw/ files come first."""
    lake = tmp_path / "lake"
    txn = LakeTransaction.begin(str(lake), "t1")
    pairs = [_stage(txn, table, "a.parquet") for table in ("events", "failed", "raw")]
    for pair in pairs:
        txn.add(*pair)
    marker = tmp_path / "paused"
    monkeypatch.setenv(L.PAUSE_AT, "commit-renamed-first")
    monkeypatch.setenv(L.PAUSE_FILE, str(marker))
    commit = threading.Thread(target=txn.commit)
    commit.start()
    while not marker.exists():
        assert commit.is_alive(), "the commit ended without pausing"
        time.sleep(0.01)
    visible = sorted(p.relative_to(lake).parts[0] for p in lake.glob("*/*/*.parquet"))
    record = json.loads((lake / L.STAGING / "t1" / T.COMMIT).read_text())
    marker.unlink()
    commit.join()
    assert visible == ["raw"]
    assert record["add"] == [list(pairs[2]), list(pairs[0]), list(pairs[1])]
    assert not list((lake / L.STAGING / "t1").glob(f"{T.COMMIT}*"))


def test_a_replaced_partition_is_exchanged_whole(tmp_path, monkeypatch):
    lake = tmp_path
    final = _partition(lake, "events", "old-1.parquet", "old-2.parquet")
    (final / "_RUN").write_text("an older run")  # a marker an older reprocess left
    txn = LakeTransaction.begin(str(lake), "t1")
    staged = Path(txn.replace_partition("events", DAY))
    assert staged == lake / L.STAGING / "t1" / "events" / DAY
    staged.mkdir(parents=True)
    (staged / "new.parquet").write_bytes(b"new")
    exchanged = []
    exchange = T.exchange_folders
    monkeypatch.setattr(T, "exchange_folders", lambda a, b: exchanged.append(1) or exchange(a, b))
    record = txn.commit()
    assert exchanged == [1]
    assert _names(final) == [T.MARKER, "new.parquet"]
    assert (final / T.MARKER).read_text() == "t1"
    assert record["replace"] == [
        {
            "staged": str(staged),
            "final": str(final),
            "new": ["new.parquet"],
            "old": [str(final / "old-1.parquet"), str(final / "old-2.parquet")],
        }
    ]
    assert not (lake / L.STAGING / "t1").exists()
    T.apply_commit(str(lake), record)  # again, as a recovery would: nothing changes
    assert _names(final) == [T.MARKER, "new.parquet"]


def test_a_folder_replaced_twice_by_files_of_the_same_names_takes_the_second(tmp_path):
    """The identity tables keep their names: a replace is done by its marker, not its names."""
    for generation in (b"first", b"second"):
        txn = LakeTransaction.begin(str(tmp_path), f"t-{generation.decode()}")
        staged = Path(txn.replace(str(tmp_path / "identity")))
        staged.mkdir(parents=True)
        (staged / "users.parquet").write_bytes(generation)
        txn.commit()
    assert (tmp_path / "identity" / "users.parquet").read_bytes() == b"second"
    assert _names(tmp_path / "identity") == [T.MARKER, "users.parquet"]


def test_replacing_with_nothing_empties_the_partition_and_a_new_one_is_renamed_in(tmp_path):
    final = _partition(tmp_path, "events", "old.parquet")
    txn = LakeTransaction.begin(str(tmp_path), "t1")
    txn.replace_partition("events", DAY)  # nothing staged there
    fresh = Path(txn.replace_partition("raw", DAY))
    fresh.mkdir(parents=True)
    (fresh / "new.parquet").write_bytes(b"new")
    txn.commit()
    assert _names(final) == [T.MARKER]
    assert _names(tmp_path / "raw" / DAY) == [T.MARKER, "new.parquet"]


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EINVAL])
def test_without_an_exchange_new_files_come_in_then_only_the_old_files_go(
    tmp_path, monkeypatch, code
):
    """gs:// or a file system without RENAME_EXCHANGE: files added meanwhile are kept."""
    final = _partition(tmp_path, "events", "old.parquet", "other.parquet")

    def cannot(a: str, b: str) -> None:
        raise OSError(code, "no exchange here")

    monkeypatch.setattr(T, "exchange_folders", cannot)
    txn = LakeTransaction.begin(str(tmp_path), "t1")
    staged = Path(txn.replace_partition("events", DAY, old=[str(final / "old.parquet")]))
    staged.mkdir(parents=True)
    (staged / "new.parquet").write_bytes(b"new")
    txn.commit()
    assert _names(final) == [T.MARKER, "new.parquet", "other.parquet"]
    assert (final / "new.parquet").read_bytes() == b"new"
    assert not (tmp_path / L.STAGING / "t1").exists()


def test_an_exchange_error_other_than_unsupported_is_raised(tmp_path, monkeypatch):
    _partition(tmp_path, "events", "old.parquet")

    def broken(a: str, b: str) -> None:
        raise OSError(errno.EIO, "disk error")

    monkeypatch.setattr(T, "exchange_folders", broken)
    txn = LakeTransaction.begin(str(tmp_path), "t1")
    txn.replace_partition("events", DAY)
    with pytest.raises(OSError, match="disk error"):
        txn.commit()
    assert (tmp_path / L.STAGING / "t1" / T.COMMIT).exists()  # committed: recovery finishes it


def test_exchange_folders_swaps_two_folders_and_says_why_it_cannot(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "y").write_text("b")
    T.exchange_folders(str(a), str(b))
    assert _names(a) == ["y"] and _names(b) == ["x"]
    with pytest.raises(OSError, match="cannot exchange") as error:
        T.exchange_folders(str(a), str(tmp_path / "missing"))
    assert error.value.errno == errno.ENOENT


def test_a_deleted_file_goes_at_commit(tmp_path):
    final = _partition(tmp_path, "failed", "old.parquet", "kept.parquet")
    txn = LakeTransaction.begin(str(tmp_path), "t1")
    txn.delete(str(final / "old.parquet"))
    txn.delete(str(final / "gone-already.parquet"))
    assert _names(final) == ["kept.parquet", "old.parquet"]
    txn.commit()
    assert _names(final) == ["kept.parquet"]


def _half_committed(lake: Path, txn_id: str, pid: int) -> LakeTransaction:
    """A transaction that wrote its commit record, then died before applying it."""
    _partition(lake, "events", "old.parquet")
    txn = LakeTransaction(str(lake), txn_id)
    _own(lake, txn_id, pid)
    txn.add(*_stage(txn, "failed", "f.parquet"))
    staged = Path(txn.replace_partition("events", DAY))
    staged.mkdir(parents=True)
    (staged / "new.parquet").write_bytes(b"new")
    txn.record(T.SUMMARY, {"written": 1, "failed": 1})
    record = {
        "id": txn_id,
        "add": txn.adds,
        "replace": [{"staged": str(staged), "final": str(lake / "events" / DAY), "new": ["new.parquet"],
                     "old": [str(lake / "events" / DAY / "old.parquet")]}],
        "delete": [],
        "metadata": txn.metadata,
    }  # fmt: skip
    (staged / T.MARKER).write_text(txn_id)
    (lake / L.STAGING / txn_id / T.COMMIT).write_text(json.dumps(record))
    return txn


# (case, committed, owner: dead | live | other host, dry_run) -> (notes, staging kept, applied)
RECOVERY_CASES = [
    ("dead, not committed", False, "dead", False, ["removed the staged files of abandoned run r"], False, False),
    ("dead, committed", True, "dead", False, ["completed the commit of interrupted run r"], False, True),
    ("dry run, not committed", False, "dead", True, ["would have removed the staged files of abandoned run r"], True, False),
    ("dry run, committed", True, "dead", True, ["would have completed the commit of interrupted run r"], True, False),
    ("live, committed", True, "live", False, [], True, False),
    ("live, not committed", False, "live", False, [], True, False),
    ("other host, not committed", False, "other host", False, [], True, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "committed", "owner", "dry_run", "notes", "kept", "applied"),
    RECOVERY_CASES,
    ids=[c[0] for c in RECOVERY_CASES],
)
def test_recovery(tmp_path, case, committed, owner, dry_run, notes, kept, applied):
    pid = os.getpid() if owner == "live" else _dead_pid()
    _half_committed(tmp_path, "r", pid)
    if not committed:
        (tmp_path / L.STAGING / "r" / T.COMMIT).unlink()
    if owner == "other host":
        _own(tmp_path, "r", pid, host="elsewhere")
    assert recover_transactions(str(tmp_path), "by-run", dry_run) == notes
    assert (tmp_path / L.STAGING / "r").exists() == kept
    events = _names(tmp_path / "events" / DAY)
    assert events == ([T.MARKER, "new.parquet"] if applied else ["old.parquet"])
    assert (tmp_path / "failed" / DAY / "f.parquet").exists() == applied
    ledger = tmp_path / L.RUNS / "r.json"
    if applied:  # the dead run is in the ledger, with the counts of its record
        assert json.loads(ledger.read_text()) == {
            "run_id": "r", "job": "import", "status": "recovered", "recovered_by": "by-run",
            "written": 1, "failed": 1,
        }  # fmt: skip
        assert read_commit(str(tmp_path), "r") == {T.SUMMARY: {"written": 1, "failed": 1}}
    else:
        assert not ledger.exists()


def test_a_recovered_transaction_without_a_summary_is_not_in_the_ledger(tmp_path):
    txn = _half_committed(tmp_path, "c", _dead_pid())
    record = json.loads((Path(txn.staging) / T.COMMIT).read_text())
    record["metadata"] = {}
    (Path(txn.staging) / T.COMMIT).write_text(json.dumps(record))
    assert recover_transactions(str(tmp_path)) == ["completed the commit of interrupted run c"]
    assert not (tmp_path / L.RUNS).exists()
    assert _names(tmp_path / "events" / DAY) == [T.MARKER, "new.parquet"]


def test_a_committed_transaction_of_another_host_stops_the_writer(tmp_path):
    _half_committed(tmp_path, "r", 1)
    _own(tmp_path, "r", 1, host="elsewhere")
    with pytest.raises(LakeBusy, match=r"run r of host elsewhere .* may be applying"):
        recover_transactions(str(tmp_path))
    assert _names(tmp_path / "events" / DAY) == ["old.parquet"]


def test_recovery_goes_on_past_a_live_transaction(tmp_path):
    _own(tmp_path, "a-live", os.getpid())
    _own(tmp_path, "b-dead", _dead_pid())
    _half_committed(tmp_path, "c-dead", _dead_pid())
    assert recover_transactions(str(tmp_path)) == [
        "removed the staged files of abandoned run b-dead",
        "completed the commit of interrupted run c-dead",
    ]
    assert _names(tmp_path / L.STAGING) == ["a-live"]


def test_a_folder_without_owner_or_an_unfinished_record_is_not_a_commit(tmp_path):
    (tmp_path / L.STAGING / "stray").mkdir(parents=True)
    _own(tmp_path, "torn", _dead_pid())
    (tmp_path / L.STAGING / "torn" / f"{T.COMMIT}.pending").write_text("{")
    assert recover_transactions(str(tmp_path)) == ["removed the staged files of abandoned run torn"]
    assert _names(tmp_path / L.STAGING) == ["stray"]


def test_recovery_of_an_empty_lake_does_nothing(tmp_path):
    assert recover_transactions(str(tmp_path / "none")) == []


@pytest.mark.parametrize(
    "leftover", [f"{L.STAGING}/run-1/_COMMITTING", "identity/_SWAP.json"], ids=["run", "identity"]
)
def test_a_lake_left_mid_commit_by_the_older_format_is_refused(tmp_path, leftover):
    (tmp_path / leftover).parent.mkdir(parents=True)
    (tmp_path / leftover).write_text("[]")
    with pytest.raises(LakeBusy) as refused:
        recover_transactions(str(tmp_path))
    assert str(refused.value) == (
        f"{tmp_path / leftover}: the lake was left mid-commit by an older eventpipe (before the "
        "lake transaction); finish that commit with the older version (run any writer job "
        "once, e.g. `eventpipe compact --no-index`), then run this one"
    )


def test_a_transaction_is_picklable(tmp_path):
    import pickle

    txn = LakeTransaction(str(tmp_path), "t1")
    txn.add("a", "b")
    copy = pickle.loads(pickle.dumps(txn))
    assert (copy.lake, copy.id, copy.adds) == (str(tmp_path), "t1", [("a", "b")])


def _paused_at(moment: str, commit, marker: Path, monkeypatch) -> threading.Thread:
    """Run `commit` in a thread until it pauses at `moment` (the test hook)."""
    monkeypatch.setenv(L.PAUSE_AT, moment)
    monkeypatch.setenv(L.PAUSE_FILE, str(marker))
    thread = threading.Thread(target=commit)
    thread.start()
    while not marker.exists():
        assert thread.is_alive(), f"the commit ended without pausing at {moment}"
        time.sleep(0.01)
    return thread


def test_before_commit_nothing_is_recorded_or_visible(tmp_path, monkeypatch):
    txn = LakeTransaction.begin(str(tmp_path / "lake"), "t1")
    txn.add(*_stage(txn, "events", "a.parquet"))
    thread = _paused_at("before-commit", txn.commit, tmp_path / "paused", monkeypatch)
    seen = (
        list((tmp_path / "lake").glob("*/*/*.parquet")),
        list(Path(txn.staging).glob("_COMMIT*")),
    )
    (tmp_path / "paused").unlink()
    thread.join()
    assert seen == ([], [])
    assert _names(tmp_path / "lake" / "events" / DAY) == ["a.parquet"]


def test_paused_after_the_first_swap_one_partition_is_new_and_the_next_still_old(
    tmp_path, monkeypatch
):
    lake = tmp_path / "lake"
    txn = LakeTransaction.begin(str(lake), "t1")
    for table in ("events", "raw"):
        _partition(lake, table, "old.parquet")
        staged = Path(txn.replace_partition(table, DAY))
        staged.mkdir(parents=True)
        (staged / "new.parquet").write_bytes(b"new")
    thread = _paused_at("commit-swapped-first", txn.commit, tmp_path / "paused", monkeypatch)
    seen = [_names(lake / table / DAY) for table in ("events", "raw")]
    (tmp_path / "paused").unlink()
    thread.join()
    assert seen == [[T.MARKER, "new.parquet"], ["old.parquet"]]
    assert _names(lake / "raw" / DAY) == [T.MARKER, "new.parquet"]


def test_the_commit_record_is_fsynced_with_its_folder_and_the_owner_is_not(tmp_path, monkeypatch):
    synced: list[int] = []
    fsync = os.fsync
    monkeypatch.setattr(T.os, "fsync", lambda fd: synced.append(fd) or fsync(fd))
    txn = LakeTransaction.begin(str(tmp_path), "t1")
    assert synced == []
    txn.add(*_stage(txn, "events", "a.parquet"))
    txn.record("note", "x")  # its record in _txn/ is not fsynced either
    txn.commit()
    assert len(synced) == 2  # the record, then its folder


def test_exchange_works_with_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / name).write_text(name)
    T.exchange_folders("a", "b")
    assert _names(tmp_path / "a") == ["b"] and _names(tmp_path / "b") == ["a"]


def test_a_partition_holding_more_than_the_files_replaced_is_not_exchanged(tmp_path):
    """Compaction lists the files it read: a file added since (another host) is kept."""
    final = _partition(tmp_path, "events", "old.parquet", "added-since.parquet")
    txn = LakeTransaction.begin(str(tmp_path), "t1")
    staged = Path(txn.replace_partition("events", DAY, old=[str(final / "old.parquet")]))
    staged.mkdir(parents=True)
    for name in ("new-1.parquet", "new-2.parquet"):
        (staged / name).write_bytes(name.encode())
    record = txn.commit()
    assert _names(final) == [T.MARKER, "added-since.parquet", "new-1.parquet", "new-2.parquet"]
    assert (final / T.MARKER).read_text() == "t1"
    assert (final / "new-2.parquet").read_bytes() == b"new-2.parquet"
    T.apply_commit(str(tmp_path), record)  # again: nothing changes
    assert _names(final) == [T.MARKER, "added-since.parquet", "new-1.parquet", "new-2.parquet"]


def test_a_replace_without_exchange_interrupted_half_way_is_finished(tmp_path, monkeypatch):
    def cannot(a: str, b: str) -> None:
        raise OSError(errno.ENOSYS, "no exchange here")

    monkeypatch.setattr(T, "exchange_folders", cannot)
    final = _partition(tmp_path, "events", "old.parquet")
    txn = LakeTransaction(str(tmp_path), "t1")
    _own(tmp_path, "t1", _dead_pid())
    staged = Path(txn.replace_partition("events", DAY))
    staged.mkdir(parents=True)
    for name in ("new-1.parquet", "new-2.parquet"):
        (staged / name).write_bytes(b"new")
    monkeypatch.setattr(T, "apply_commit", lambda lake, record: None)  # dies after the record
    txn.commit()
    monkeypatch.undo()
    monkeypatch.setattr(T, "exchange_folders", cannot)
    os.rename(staged / "new-1.parquet", final / "new-1.parquet")  # ... and one rename
    assert recover_transactions(str(tmp_path)) == ["completed the commit of interrupted run t1"]
    assert _names(final) == [T.MARKER, "new-1.parquet", "new-2.parquet"]


def test_adding_into_an_existing_partition(tmp_path):
    _partition(tmp_path, "events", "old.parquet")
    txn = LakeTransaction.begin(str(tmp_path), "t1")
    txn.add(*_stage(txn, "events", "a.parquet"))
    txn.commit()
    assert _names(tmp_path / "events" / DAY) == ["a.parquet", "old.parquet"]


def test_the_refusal_of_another_hosts_commit_names_it_and_says_what_to_do(tmp_path):
    _half_committed(tmp_path, "r", 1)
    _own(tmp_path, "r", 77, host="elsewhere")
    with pytest.raises(LakeBusy) as busy:
        recover_transactions(str(tmp_path))
    assert str(busy.value) == (
        "run r of host elsewhere (pid 77) has committed and may be applying its commit now; "
        "if it died, run any writer job on that host to finish it"
    )


def test_recovery_goes_on_past_an_uncommitted_transaction_of_another_host(tmp_path):
    _own(tmp_path, "a-elsewhere", 1, host="elsewhere")
    _half_committed(tmp_path, "b-dead", _dead_pid())
    assert recover_transactions(str(tmp_path)) == ["completed the commit of interrupted run b-dead"]


def test_an_owner_without_pid_is_left_alone_and_one_without_job_is_recorded_without(tmp_path):
    _half_committed(tmp_path, "a", _dead_pid())
    (tmp_path / L.STAGING / "a" / T.OWNER).write_text(json.dumps({"host": socket.gethostname()}))
    assert recover_transactions(str(tmp_path)) == []  # pid 0: this process group, alive
    owner = {"host": socket.gethostname(), "pid": _dead_pid()}
    (tmp_path / L.STAGING / "a" / T.OWNER).write_text(json.dumps(owner))
    assert recover_transactions(str(tmp_path)) == ["completed the commit of interrupted run a"]
    assert json.loads((tmp_path / L.RUNS / "a.json").read_text())["job"] == ""
