"""The `eventpipe stream` flags: the opt-in maximum event age and what --help says."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from eventpipe.jobs.stream import parse_age


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600),
        ("90s", 90),
        ("90m", 5400),
        ("12h", 43_200),
        ("30d", 2_592_000),
        ("1.5h", 5400),
    ],
)
def test_max_event_age_takes_seconds_or_a_unit(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "0", "-5m", "30x", "1e400", "nan", "abc"])
def test_a_bad_max_event_age_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a positive age"):
        parse_age(text)


def test_help_says_lateness_only_bounds_window_state_and_age_is_opt_in() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "eventpipe.jobs.cli", "stream", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    text = " ".join(out.split())
    assert "only bounds that state" in text
    assert "still written, once, as further files of their own day's partition" in text
    assert "--max-event-age AGE" in text and "'too_old'" in text
