"""argparse types of the jobs' numeric flags: a count or a duration that must be positive
(or, for a wait, not negative) is refused at parse time with a message naming the rule."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts, sizes)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, megabytes)."""
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a wait or a lateness that may be zero)."""
    value = float(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be zero or a positive number, got {text!r}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 0 (any free port, which the server logs) to 65535."""
    value = int(text)
    if not 0 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {text!r}")
    return value
