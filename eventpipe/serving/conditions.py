"""The conditions the serving index answers, as the filter compiler hands them over: the
comparison operators and the operand parsing both sides share."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

COMPARISONS = {
    "is less than": "<",
    "is less than or equal to": "<=",
    "is greater than": ">",
    "is greater than or equal to": ">=",
}
DATE_COMPARISONS = {
    "is before": "<",
    "is on or before": "<=",
    "is after": ">",
    "is on or after": ">=",
}

NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")


@dataclass(frozen=True)
class IndexedCondition:
    """A condition that every match of its filter meets, on a path inside a json column
    or on one of the columns the serving index holds (`pointer` "", values as the index's
    text): the index can look its rows up (see index_lookup)."""

    column: str
    pointer: str
    operator: str
    values: tuple[str, ...]


def parse_float(text: str) -> float:
    """A finite number written in decimal or scientific notation, or ValueError."""
    if not NUMBER_RE.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a number")
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is out of range")
    return value


def parse_datetime(text: str) -> dt.datetime:
    """An ISO 8601 date or datetime as an aware UTC datetime (naive means UTC), or ValueError."""
    stripped = text.strip()
    if len(stripped) > 64 or not stripped[:4].isdigit():
        raise ValueError(f"{text!r} is not an ISO 8601 datetime")
    try:
        value = dt.datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 datetime") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
