"""The ingester and the scheduled jobs take turns on the writer lock instead of failing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from collector_support import Tenant, bearer, make_event, serve_process, wait_until

from eventpipe.io.lake_lock import writer_lock
from eventpipe.io.lake_transaction import LakeBusy


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "eventpipe.jobs.cli", *args], stdout=out, stderr=out
        )


def test_a_lake_job_waits_for_the_writer_lock_by_default(lake: Path, tmp_path: Path) -> None:
    lake.mkdir()
    log = tmp_path / "compact.log"
    with writer_lock(str(lake), "ingest", "held-by-test"):
        job = _start(["compact", "--lake", str(lake)], log)
        wait_until(
            lambda: "waiting up to 120 s" in log.read_text() or job.poll() is not None,
            "compact to wait",
        )
        assert job.poll() is None, log.read_text()  # waiting, not exited with 75
        assert "being written by ingest run held-by-test" in log.read_text()
    assert job.wait(timeout=120) == 0, log.read_text()


def test_a_writer_waiting_for_the_lock_stops_when_cancelled(lake: Path) -> None:
    lake.mkdir()
    stop = threading.Event()
    with writer_lock(str(lake), "compact", "held-by-test"):
        stop.set()
        with (
            pytest.raises(LakeBusy, match="stopped while waiting"),
            writer_lock(str(lake), "ingest", "r", wait=None, cancel=stop.is_set),
        ):
            pass


@pytest.mark.slow
def test_compact_and_reprocess_run_while_the_ingester_runs_and_nothing_is_lost(
    lake: Path, post: Callable, counts: Callable, tmp_path: Path
) -> None:
    sent: list[str] = []
    posting = threading.Event()

    def client() -> None:
        while not posting.is_set():
            sent.extend(post(20, invalid=1))

    log = tmp_path / "ingest.log"
    ingest = _start(
        ["ingest", "--lake", str(lake), "--interval-seconds", "0.2", "--no-enrich"], log
    )
    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_until(lambda: len(counts(lake)) >= 100, "the ingester to write events")
        for job in (
            ["compact", "--lake", str(lake)],
            [
                "reprocess",
                "--lake",
                str(lake),
                "--from",
                "2026-12-01",
                "--to",
                "2026-12-01",
                "--no-enrich",
            ],
            ["compact", "--lake", str(lake)],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "eventpipe.jobs.cli", *job], capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
    finally:
        posting.set()
        thread.join()
    wait_until(lambda: len(counts(lake)) == len(sent), "every acknowledged event", limit=120)
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=120) == 0, log.read_text()
    said = log.read_text()
    assert "[OK]" in said and "MISMATCH" not in said
    assert counts(lake) == dict.fromkeys(sent, 1)
    assert sum(counts(lake, "failed", "line").values()) == len(sent) // 20


@pytest.mark.slow
def test_serve_ingest_shows_a_posted_event_in_the_read_api(lake: Path, tenant: Tenant) -> None:
    with serve_process(lake, "--ingest", "--ingest-interval-seconds", "0.5") as (url, process):
        with httpx.Client(base_url=url, timeout=30) as http:
            events = [make_event() for _ in range(3)]
            posted = http.post(
                "/v1/events", json={"batch": events}, headers=bearer(tenant.write_key)
            )
            assert posted.status_code == 200, posted.text
            wanted = {e["messageId"] for e in events}

            def visible() -> bool:
                answer = http.get("/v1/events", headers=bearer(tenant.api_read))
                assert answer.status_code == 200, answer.text
                return wanted <= {e["messageId"] for e in answer.json()["events"]}

            wait_until(visible, "the posted events in GET /v1/events", limit=120)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)  # (uvicorn ends by raising the signal again: -15)

    def finished() -> bool:  # the ingester got SIGTERM with its parent, finished and recorded
        runs = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
        return [r["status"] for r in runs] == ["finished"]

    wait_until(finished, "the ingester's run record", limit=60)
    assert not os.listdir(lake / "_staging")
