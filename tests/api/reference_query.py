"""An independent reference of GET /v1/events' answer: the lake's rows read with pyarrow,
filtered by a Python reading of the filter language's documented semantics (the rules in
`api.filters.FILTER_LANGUAGE`) and sorted in Python by the documented order (the order
column, nulls last, then messageId, in the request's direction). Nothing of the
product's SQL (predicate, ORDER BY) is used, so the query plan's ordering and filtering
are both checked against it.

Covers the operators and properties the plan and serving-index tests use.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MISSING = object()  # a json key that is not there
JSON_COLUMNS = ("properties", "traits")


def lake_rows(lake: Path) -> list[dict[str, Any]]:
    """Every row of LAKE/events, as Python values (json columns parsed)."""
    files = sorted((lake / "events").glob("date=*/*.parquet"))
    rows = pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()
    for row in rows:
        for column in JSON_COLUMNS:
            row[column] = MISSING if row[column] is None else _loads(row[column])
    return rows


def _loads(text: str) -> Any:
    """JSON text -> Python, the FIRST of duplicate keys winning (as DuckDB's reader)."""

    def first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            out.setdefault(key, value)
        return out

    return json.loads(text, object_pairs_hook=first_wins)


def _value(row: dict[str, Any], prop: str) -> tuple[bool, Any]:
    """(is a json value, the value of `prop` in `row`): None for a null, MISSING for a json
    key that is not there."""
    head, *path = prop.split(".")
    value = row[head]
    if head in JSON_COLUMNS:
        for key in path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and _index(key) < len(value):
                value = value[int(key)]
            else:
                return True, MISSING
        return True, value
    for key in path:  # context.session.id
        value = None if value is None else value.get(key)
    return False, value


def _index(key: str) -> float:
    """An array index segment (JSON pointer: digits without a leading zero), else inf."""
    return int(key) if key.isdigit() and (key == "0" or key[0] != "0") else math.inf


def _number(text: str) -> float | None:
    try:
        number = float(Decimal(text))
    except (InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None


def _instant(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


COMPARE = {
    "is": lambda a, b: a == b,
    "is greater than": lambda a, b: a > b,
    "is greater than or equal to": lambda a, b: a >= b,
    "is less than": lambda a, b: a < b,
    "is less than or equal to": lambda a, b: a <= b,
    "is after": lambda a, b: a > b,
    "is before": lambda a, b: a < b,
}


def _operand(value: Any, operand: str, is_json: bool) -> tuple[Any, Any] | None:
    """(stored value, operand) in the type they are compared in, or None: not comparable."""
    if isinstance(value, bool):
        return (value, operand == "true") if operand in ("true", "false") else None
    if isinstance(value, int | float):
        number = _number(operand)
        return None if number is None else (float(value), number)
    if isinstance(value, dt.datetime):
        instant = _instant(operand)
        return None if instant is None else (value, instant)
    if isinstance(value, str):
        return value, operand
    return None  # arrays and objects


def _matches_one(value: Any, operator: str, values: list[str], is_json: bool) -> bool:
    """One present, non-null value against a condition (every operator but the null ones)."""
    if operator == "is not":
        return not _matches_one(value, "is", values, is_json)
    if operator == "is one of":
        return any(_matches_one(value, "is", [v], is_json) for v in values)
    if operator in ("contains", "starts with", "ends with"):
        if not isinstance(value, str):
            return False
        test = {"contains": str.__contains__, "starts with": str.startswith,
                "ends with": str.endswith}[operator]  # fmt: skip
        return test(value, values[0])
    if operator == "is between":
        return _matches_one(value, "is greater than or equal to", values[:1], is_json) and (
            _matches_one(value, "is less than or equal to", values[1:], is_json)
        )
    if operator in ("is true", "is false"):
        return isinstance(value, bool) and value == (operator == "is true")
    if is_json and operator in ("is after", "is before"):
        instant = _instant(value) if isinstance(value, str) else None
        return instant is not None and _matches_one(instant, operator, values, False)
    pair = _operand(value, values[0], is_json)
    if pair is None:
        return False
    if isinstance(pair[0], bool) and operator != "is":
        return False
    return COMPARE[operator](*pair)


def condition_matches(row: dict[str, Any], prop: str, operator: str, values: list[str]) -> bool:
    """Whether `row` meets one condition, by the documented null and json rules."""
    is_json, value = _value(row, prop)
    absent = value is None or value is MISSING
    if operator == "is null":
        return absent
    if operator == "is not null":
        return not absent
    return not absent and _matches_one(value, operator, values, is_json)


def filter_matches(row: dict[str, Any], document: dict | None) -> bool:
    """Whether `row` meets a filter document (None: every row does)."""
    if not document:
        return True
    results = [
        condition_matches(row, c["property"], c["operator"], list(c.get("values", [])))
        for c in document["conditions"]
    ]
    return all(results) if document["logical"] == "and" else any(results)


def reference_page(
    rows: list[dict[str, Any]],
    document: dict | None,
    order: str,
    ascending: bool,
    first: int,
    limit: int,
) -> list[str]:
    """The messageIds of the page: filtered, sorted by `order` (nulls last) then messageId
    in the same direction, then cut to [first, first + limit)."""
    matching = [r for r in rows if filter_matches(r, document)]
    present = [r for r in matching if r[order] is not None]
    nulls = [r for r in matching if r[order] is None]
    present.sort(key=lambda r: (r[order], r["messageId"]), reverse=not ascending)
    nulls.sort(key=lambda r: r["messageId"], reverse=not ascending)
    return [r["messageId"] for r in present + nulls][first : first + limit]
