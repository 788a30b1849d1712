"""Job modules that can run as `python -m eventpipe.jobs.X` are the same commands as `eventpipe X`."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "usage"),
    [("import_events", "eventpipe import"), ("stream", "eventpipe stream"),
     ("compact", "eventpipe compact")],
)  # fmt: skip
def test_a_job_module_run_directly_explains_itself(module, usage):
    done = subprocess.run(
        [sys.executable, "-m", f"eventpipe.jobs.{module}", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: {usage} ")
    assert len(done.stdout) > 500  # the flags and their help, not an empty parser


@pytest.mark.parametrize(
    ("module", "usage"),
    [("import_events", "usage: eventpipe import"), ("stream", "usage: eventpipe stream")],
)
def test_a_job_module_run_without_arguments_prints_its_usage(module, usage):
    done = subprocess.run(
        [sys.executable, "-m", f"eventpipe.jobs.{module}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert usage in done.stderr
    assert "Traceback" not in done.stderr
