"""Lake rows (Arrow) -> the event objects of the list-events response (seed 000).

- nested objects are rebuilt (`context.browser.name` sits inside `context.browser`);
- a null optional field is absent, and so is an object left empty (`context` when
  there is no information in it);
- `traits` is always present (`{}` when none); json columns are parsed back to JSON;
- datetimes are ISO 8601 UTC with milliseconds and `Z` (`2025-10-20T16:15:24.010Z`);
- `context.session.id` (a 64-bit int) is a string, as in the seed's example;
- decimals are JSON numbers (`2`, `1.25`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa

from eventpipe.schemas import EVENT_FIELDS, Field

_FIELDS_BY_NAME = {f.name: f for f in EVENT_FIELDS}
_AS_STRING = {("context", "session", "id")}


def format_datetime(value: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _decimal(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _convert(f: Field, value: Any, path: tuple[str, ...]) -> Any:
    """The JSON value of `value` for field `f`, or None when it is to be left out."""
    if value is None:
        return None
    kind = f.kind
    if kind == "object":
        out: dict[str, Any] = {}
        for child in f.children:
            converted = _convert(child, value.get(child.name), (*path, child.name))
            if converted is not None:
                out[child.name] = converted
        return out or None
    if kind == "datetime":
        return format_datetime(value)
    if kind == "json":
        return orjson.loads(value)
    if kind == "decimal":
        return _decimal(value)
    if path in _AS_STRING:
        return str(value)
    return value


def event_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The response object of one lake row (a dict of top-level columns)."""
    event: dict[str, Any] = {}
    for name, value in row.items():
        f = _FIELDS_BY_NAME[name]
        converted = _convert(f, value, (name,))
        if converted is not None:
            event[name] = converted
        elif name == "traits":
            event[name] = {}
    return event


def events_from_table(table: pa.Table) -> list[dict[str, Any]]:
    """The response objects of every row of `table`, in order."""
    return [event_from_row(row) for row in table.to_pylist()]
