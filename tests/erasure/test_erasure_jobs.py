"""The server starts erasure jobs one at a time: requests arriving while one runs get one
more run after it, never a process each."""

from __future__ import annotations

import sys

from collector_support import wait_until

from eventpipe.collector.erasures import ErasureJobs

SCRIPT = """
import os, sys, time
log, gate = sys.argv[1], sys.argv[2]
with open(log, "a") as handle:
    handle.write("run\\n")
while os.path.exists(gate):
    time.sleep(0.02)
"""


def test_requests_during_a_run_get_one_more_run(tmp_path):
    log, gate = tmp_path / "log", tmp_path / "gate"
    gate.touch()
    jobs = ErasureJobs(str(tmp_path))
    jobs.command = [sys.executable, "-c", SCRIPT, str(log), str(gate)]
    jobs.start()
    wait_until(lambda: log.exists() and log.read_text() == "run\n", "the first run")
    for _ in range(5):
        jobs.start()
    gate.unlink()
    wait_until(lambda: not jobs._running, "the runs to end")
    assert log.read_text() == "run\nrun\n"
    jobs.start()  # idle again: a new request starts a new run
    wait_until(lambda: log.read_text() == "run\n" * 3, "the third run")
