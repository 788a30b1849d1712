"""The run summary and exit code of an import whose files were damaged."""

from __future__ import annotations

import pytest

from eventpipe.jobs.summary import RunSummary


@pytest.mark.parametrize(
    ("counts", "by_reason", "status", "code"),
    [
        ((10, 8, 2, 0), {"invalid_json": 2}, "[OK]", 0),
        ((10, 8, 2, 0), {"too_large": 2}, "[OK]", 0),
        (
            (10, 8, 2, 0),
            {"invalid_file": 1, "invalid_json": 1},
            "[INCOMPLETE: damaged or unreadable files: 1]",
            3,
        ),
        ((10, 8, 1, 0), {"invalid_file": 1}, "[MISMATCH]", 1),
    ],
)
def test_damaged_files_make_the_run_incomplete(counts, by_reason, status, code):
    read, written, failed, duplicates = counts
    damaged = by_reason.get("invalid_file", 0)
    summary = RunSummary("run", read, written, failed, duplicates, by_reason, damaged_files=damaged)
    assert summary.lines()[1].endswith(status)
    assert summary.exit_code() == code
    assert summary.to_dict()["damaged_files"] == damaged


def test_a_damaged_file_read_again_is_still_reported():
    """A re-run's invalid_file row is a duplicate of the stored one: the file is still damaged."""
    summary = RunSummary("run", 5, 0, 0, 5, {"invalid_file": 0}, damaged_files=1)
    assert summary.lines()[1].endswith("[INCOMPLETE: damaged or unreadable files: 1]")
    assert summary.exit_code() == 3
    assert not [line for line in summary.lines() if line.endswith(": 0")]  # no zero counts
