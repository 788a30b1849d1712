"""A benchmark that measured nothing says so and exits non-zero (never a figure of nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize(
    "command",
    [
        ["bench_enrich.py", "--rows", "0"],
        ["bench_api.py", "--events", "0", "--days", "1", "--users", "1"],
        ["bench_identity.py", "--anonymous", "0", "--users", "0", "--chains", "0"],
        ["bench_collector.py", "--seconds", "0"],
        ["bench_api_memory.py", "--lake", "no-such-lake"],  # no events/: it says so
    ],
    ids=lambda command: command[0],
)
def test_a_benchmark_with_nothing_to_measure_exits_non_zero(command: list[str], tmp_path) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode != 0
    assert "measured nothing" in run.stderr.splitlines()[-1], run.stderr[-2000:]
