"""The lake's writer lock, in one process: one writer at a time, a busy lake names its holder.

(Across processes, killed holders and the jobs' exit code: tests/robustness/test_lake_writers.py.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from eventpipe.io import lake as L
from eventpipe.io import lake_transaction as T
from eventpipe.io.lake_lock import (
    LOCK_FILE,
    LakeBusy,
    describe_holder,
    lock_path,
    open_writer,
    writer_lock,
)
from eventpipe.io.lake_transaction import LakeTransaction


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    lake = str(tmp_path / "lake")
    with writer_lock(lake, "import", "run-1"):
        holder = json.loads((tmp_path / "lake" / LOCK_FILE).read_text())
        assert {k: holder[k] for k in ("job", "run", "host", "pid")} == {
            "job": "import",
            "run": "run-1",
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        with pytest.raises(LakeBusy) as busy, writer_lock(lake, "compact", "run-2"):
            pytest.fail("two writers held the lake")
        message = str(busy.value)
        assert message.startswith(f"the lake {lake} is being written by import run run-1 (pid ")
        assert f"on {socket.gethostname()}, since {holder['since']})" in message
        assert "--wait SECONDS" in message
    assert (tmp_path / "lake" / LOCK_FILE).read_text() == ""  # released: no holder named
    with writer_lock(lake, "compact", "run-2"):
        assert json.loads((tmp_path / "lake" / LOCK_FILE).read_text())["job"] == "compact"


def test_a_waiting_writer_is_told_the_holder_once_then_gives_up(tmp_path):
    lake = str(tmp_path / "lake")
    told: list[str] = []
    with (
        writer_lock(lake, "identity", "run-1"),
        pytest.raises(LakeBusy, match="identity run run-1"),
        writer_lock(lake, "import", "run-2", wait=0.5, on_wait=told.append),
    ):
        pytest.fail("two writers held the lake")
    assert len(told) == 1 and told[0].startswith("identity run run-1 (pid ")


def test_a_writer_that_raises_releases_the_lock(tmp_path):
    lake = str(tmp_path / "lake")
    with pytest.raises(RuntimeError), writer_lock(lake, "import", "run-1"):
        raise RuntimeError("job failed")
    with open_writer(lake, "import", "run-2") as notes:
        assert notes == []  # nothing to recover in an empty lake


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            '{"job": "compact", "run": "r", "pid": 7, "host": "h", "since": "s"}',
            "compact run r (pid 7 on h, since s)",
        ),
        ("", "another process (it has not said which yet)"),
        ('{"job": "comp', "another process (it has not said which yet)"),
    ],
)
def test_describe_holder(text, words):
    assert describe_holder(text) == words


def test_a_remote_lake_is_locked_by_a_host_local_file_per_url(tmp_path):
    assert lock_path(str(tmp_path / "lake")) == str(tmp_path / "lake" / LOCK_FILE)
    assert (tmp_path / "lake").is_dir()
    a, b = lock_path("gs://bucket/lake-a"), lock_path("gs://bucket/lake-b")
    assert a != b and a == lock_path("gs://bucket/lake-a")
    assert Path(a).parent == Path(tempfile.gettempdir()) / "eventpipe-locks"
    assert Path(a).parent.is_dir() and a.endswith(".lock")


def test_a_writer_told_to_wait_as_long_as_it_takes_gets_the_lake_when_it_is_free(tmp_path, caplog):
    lake = str(tmp_path / "lake")
    asked, done = threading.Event(), threading.Event()

    def first_writer() -> None:
        with writer_lock(lake, "compact", "run-1"):
            asked.wait()
        done.set()

    holder = threading.Thread(target=first_writer)
    holder.start()
    while not (tmp_path / "lake" / LOCK_FILE).exists() or not (
        (tmp_path / "lake" / LOCK_FILE).read_text()
    ):
        assert holder.is_alive()
        time.sleep(0.01)
    told: list[str] = []

    def on_wait(description: str) -> None:
        told.append(description)
        asked.set()  # the first writer may finish now

    with writer_lock(lake, "import", "run-2", wait=None, on_wait=on_wait):
        assert done.is_set()
    holder.join()
    assert len(told) == 1
    [record] = [r for r in caplog.records if r.name == "eventpipe.io.lake_lock"]
    assert (
        record.getMessage()
        == f"the lake {lake} is being written by {told[0]}: waiting as long as it takes"
    )


def test_a_limited_wait_is_logged_with_its_limit(tmp_path, caplog):
    lake = str(tmp_path / "lake")
    with (
        writer_lock(lake, "identity", "run-1"),
        pytest.raises(LakeBusy),
        writer_lock(lake, "import", "run-2", wait=0.3),
    ):
        pytest.fail("two writers held the lake")
    [record] = [r for r in caplog.records if r.name == "eventpipe.io.lake_lock"]
    assert record.getMessage().startswith(
        f"the lake {lake} is being written by identity run run-1 (pid "
    )
    assert record.getMessage().endswith(": waiting up to 0.3 s")


@pytest.mark.parametrize("dry_run", [True, False])
def test_recover_lake_finishes_what_a_dead_writer_left(tmp_path, dry_run):
    """The one recovery step of every writer: a dead run's commit is completed, for the ledger."""
    lake = tmp_path / "lake"
    txn = LakeTransaction(str(lake), "dead")
    staged = Path(txn.staged_path("events", "date=2026-01-01", "a.parquet"))
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"PAR1")
    final = lake / "events" / "date=2026-01-01" / "a.parquet"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    running = {"host": socket.gethostname(), "pid": dead.pid, "job": "import"}
    (lake / L.STAGING / "dead" / T.OWNER).write_text(json.dumps(running))
    record = {"id": "dead", "add": [(str(staged), str(final))], "replace": [], "delete": []}
    record["metadata"] = {T.SUMMARY: {"written": 1}}
    (lake / L.STAGING / "dead" / T.COMMIT).write_text(json.dumps(record))
    with open_writer(str(lake), "import", "by-run", dry_run=dry_run) as notes:
        pass
    did = "completed the commit of interrupted run dead"
    assert notes == [f"would have {did}" if dry_run else did]
    assert final.exists() != dry_run
    if not dry_run:
        ledger = json.loads((lake / L.RUNS / "dead.json").read_text())
        assert (ledger["recovered_by"], ledger["written"]) == ("by-run", 1)
