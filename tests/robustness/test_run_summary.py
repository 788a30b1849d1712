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
    summary = RunSummary("run", read, written, failed, duplicates, by_reason)
    assert summary.lines()[1].endswith(status)
    assert summary.exit_code() == code
    assert summary.to_dict()["damaged_files"] == by_reason.get("invalid_file", 0)
