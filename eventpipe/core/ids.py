"""Ids of runs, compactions and index builds."""

from __future__ import annotations

import secrets
from datetime import datetime


def time_ordered_id(now: datetime) -> str:
    """A unique id that sorts in time order: UTC time to the microsecond plus a random suffix.

    Runs, compactions and index builds are named with it, so the newest is the
    greatest name even when two start within the same second.
    """
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)
