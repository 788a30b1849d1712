"""One writer at a time, recovery first, failed rows once, a ledger that adds up (issue #12)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from api_support import serve_process

from eventpipe.io import lake as L
from eventpipe.io import lake_lock, lake_transaction
from eventpipe.io.lake_lock import EXIT_BUSY, writer_lock
from eventpipe.io.lake_sink import write_visible
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, generate(folder, events=4000, seed=42)


def _rows(lake: Path, table: str) -> int:
    return sum(pq.read_metadata(p).num_rows for p in lake.glob(f"{table}/*/*.parquet"))


def _import_args(corpus: Path, lake: Path, *extra: str) -> list[str]:
    return ["import", str(corpus / "*"), "--lake", str(lake), "--no-enrich", *extra]


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_job_left_behind():
    """Every job a test starts is killed at its end (a paused job would wait forever)."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            _kill(proc)


def _start(args: list[str], log: Path, pause_at: str = "", marker: Path | None = None):
    env = dict(os.environ)
    if pause_at:
        env[L.PAUSE_AT], env[L.PAUSE_FILE] = pause_at, str(marker)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "eventpipe.jobs.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    STARTED.append(proc)
    return proc


def _wait_until(condition, proc: subprocess.Popen, what: str) -> None:
    """Poll `condition` while `proc` runs (a job that ends first fails the test)."""
    while not condition():
        assert proc.poll() is None, f"the job ended before {what}"
        threading.Event().wait(0.05)


def _paused(corpus: Path, lake: Path, tmp_path: Path, moment: str):
    """An import paused at `moment` (asserted reached): (process, marker file)."""
    marker = tmp_path / f"paused-{moment}"
    proc = _start(_import_args(corpus, lake), tmp_path / "paused.log", moment, marker)
    _wait_until(marker.exists, proc, f"reaching {moment}")
    assert marker.read_text() == f"{moment} {proc.pid}"
    return proc, marker


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _keys_once(lake: Path) -> bool:
    files = str(lake / "events" / "*" / "*.parquet")
    total, distinct = duckdb.sql(
        f"SELECT count(*), count(DISTINCT (connectionId, messageId)) FROM read_parquet('{files}')"
    ).fetchall()[0]
    return total == distinct


def test_two_overlapping_imports_store_every_event_once(corpus, tmp_path):
    folder, manifest = corpus
    lake = tmp_path / "lake"
    first, marker = _paused(folder, lake, tmp_path, "before-commit")
    second_log = tmp_path / "second.log"
    second = _start(_import_args(folder, lake, "--wait", "600"), second_log)
    # The second import waits for the first (old code: it ran to its end meanwhile).
    _wait_until(lambda: second.poll() is not None or b"waiting" in second_log.read_bytes(),
                first, "the second import waited or ended")  # fmt: skip
    marker.unlink()
    assert first.wait() == 0
    assert second.wait() == 0, second_log.read_text()[-3000:]
    assert _rows(lake, "events") == manifest["expected_written"]  # old code: twice as many
    assert _rows(lake, "raw") == manifest["expected_written"]
    assert _rows(lake, "failed") == manifest["expected_failed"]
    assert _keys_once(lake)
    said = second_log.read_text()
    assert "being written by import run" in said and f"pid {first.pid}" in said
    runs = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    assert sum(r["written"] for r in runs) == manifest["expected_written"]
    assert sorted(r["written"] for r in runs) == [0, manifest["expected_written"]]


@pytest.mark.parametrize(
    "job",
    [
        ["import", "{corpus}/*", "--lake", "{lake}"],
        ["reprocess", "--lake", "{lake}", "--from", "2000-01-01", "--to", "2100-01-01"],
        ["identity", "--lake", "{lake}"],
        ["compact", "--lake", "{lake}"],
    ],
    ids=["import", "reprocess", "identity", "compact"],
)
def test_a_second_writer_exits_naming_the_holder_and_a_killed_holder_frees_the_lake(
    job, corpus, tmp_path, capsys, caplog
):
    folder, manifest = corpus
    lake = tmp_path / "lake"
    assert main(_import_args(folder, lake)) == 0  # something for every job to work on
    holder, _ = _paused(folder, lake, tmp_path, "before-commit")
    args = [a.format(corpus=folder, lake=lake) for a in job]
    assert main([*args, "--wait", "0"]) == EXIT_BUSY  # (by default a job waits 120 s)
    said = capsys.readouterr().err + caplog.text
    assert "being written by import run" in said and f"pid {holder.pid}" in said
    assert main([*args, "--wait", "0.5"]) == EXIT_BUSY
    _kill(holder)  # the kernel frees its lock; its staged files are removed first
    assert main([*args, "--wait", "30"]) == 0
    assert not list((lake / L.STAGING).glob("*/events"))
    assert _rows(lake, "events") == manifest["expected_written"]


def test_an_import_killed_mid_rename_is_completed_and_recorded_by_the_next_writer(corpus, tmp_path):
    folder, manifest = corpus
    lake = tmp_path / "lake"
    proc, _ = _paused(folder, lake, tmp_path, "commit-renamed-first")
    _kill(proc)
    assert _rows(lake, "raw") < manifest["expected_written"]  # the moment it is about
    assert main(["compact", "--lake", str(lake), "--no-index"]) == 0
    assert _rows(lake, "raw") == manifest["expected_written"]
    assert _rows(lake, "events") == manifest["expected_written"]
    assert _rows(lake, "failed") == manifest["expected_failed"]
    [dead] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    assert dead["status"] == "recovered" and dead["job"] == "import"
    assert dead["recovered_by"] and dead["written"] == manifest["expected_written"]
    assert dead["failed"] == manifest["expected_failed"]


def test_the_ledger_adds_up_when_an_import_recovers_a_dead_commit(corpus, tmp_path, capsys):
    folder, manifest = corpus
    lake = tmp_path / "lake"
    proc, _ = _paused(folder, lake, tmp_path, "commit-renamed-first")
    _kill(proc)
    assert main(_import_args(folder, lake)) == 0
    runs = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    assert sum(r["written"] for r in runs) == _rows(lake, "events") == manifest["expected_written"]
    assert sum(r["failed"] for r in runs) == _rows(lake, "failed") == manifest["expected_failed"]
    [own] = [r for r in runs if r.get("status") != "recovered"]
    assert own["written"] == 0 and any("completed the commit" in n for n in own["recovered"])


def test_a_rerun_adds_no_failed_row_and_counts_them_as_duplicates(corpus, tmp_path, capsys):
    folder, manifest = corpus
    lake = tmp_path / "lake"
    assert main(_import_args(folder, lake)) == 0
    capsys.readouterr()
    assert main(_import_args(folder, lake)) == 0
    assert _rows(lake, "failed") == manifest["expected_failed"]
    runs = sorted((json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")),
                  key=lambda r: r["run_id"])  # fmt: skip
    second = runs[-1]
    assert second["written"] == 0 and second["failed"] == 0
    assert second["duplicates"] == second["read"] and second["reconciles"]
    assert sum(second["failed_by_reason"].values()) == 0


def test_a_file_rewritten_in_place_keeps_its_new_failed_records(tmp_path):
    source = tmp_path / "today.jsonl"
    lake = tmp_path / "lake"
    source.write_text('{"type": "track"\n')
    assert main(["import", str(source), "--lake", str(lake), "--no-enrich"]) == 0
    source.write_text('{"type": "page"\n')  # same file, line and reason, other record
    assert main(["import", str(source), "--lake", str(lake), "--no-enrich"]) == 0
    assert _rows(lake, "failed") == 2


class _Signal(logging.Handler):
    def __init__(self, event: threading.Event) -> None:
        super().__init__()
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


def test_a_stream_commit_waits_while_a_batch_writer_holds_the_lake(tmp_path):
    lake = str(tmp_path / "lake")
    rel = "date=2026-01-01/part-s.parquet"
    final = tmp_path / "lake" / "failed" / rel
    acquired, release, waiting = threading.Event(), threading.Event(), threading.Event()

    def batch_writer() -> None:
        with writer_lock(lake, "import", "holder"):
            acquired.set()
            release.wait()

    holder = threading.Thread(target=batch_writer)
    holder.start()
    acquired.wait()
    signal_handler = _Signal(waiting)
    logging.getLogger(lake_lock.__name__).addHandler(signal_handler)
    try:
        streamer = threading.Thread(
            target=write_visible, args=(lake, "s", [("failed", rel, pa.table({"x": [1]}))])
        )
        streamer.start()
        while not waiting.is_set():  # the stream's commit finds the lake busy ...
            assert streamer.is_alive(), "the stream committed while a batch job held the lake"
            threading.Event().wait(0.05)
        assert not final.exists()  # ... and does not rename its file
    finally:
        release.set()
        holder.join()
        streamer.join()
        logging.getLogger(lake_lock.__name__).removeHandler(signal_handler)
    assert final.exists()


def test_serving_reads_while_a_writer_holds_the_lake(corpus, tmp_path):
    folder, _ = corpus
    lake = tmp_path / "lake"
    assert main(_import_args(folder, lake)) == 0
    with (
        writer_lock(str(lake), "import", "holder"),
        serve_process(lake, "--insecure-no-auth") as url,
    ):
        response = httpx.get(url + "/v1/events", params={"limit": 5}, timeout=30)
    assert response.status_code == 200
    assert len(response.json()["events"]) == 5


def test_a_writer_exits_busy_when_a_commit_of_another_host_may_be_applying(
    corpus, tmp_path, caplog
):
    folder, _ = corpus
    lake = tmp_path / "lake"
    txn = lake_transaction.LakeTransaction.begin(str(lake), "compact-x", "compact")
    owner = {"host": "elsewhere", "pid": 1, "job": "compact"}
    Path(txn.staging, lake_transaction.OWNER).write_text(json.dumps(owner))
    Path(txn.staging, lake_transaction.COMMIT).write_text("{}")
    assert main(_import_args(folder, lake)) == EXIT_BUSY
    assert "run compact-x of host elsewhere (pid 1) has committed" in caplog.text
    assert not list(lake.glob("events/*/*.parquet"))
