"""One parse of a filter into a typed tree, validated once against the event schema.

`parse_filter(text)` (the `filter` query parameter) and `filter_from_document(document)`
return a `Filter` of `Condition`s, or raise FilterError naming the offending part
(`filter.conditions[0].values[1]`) with the reason. No SQL here: `eventpipe.query.sql`
renders a tree for an engine.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from eventpipe.query.language import (
    DATE_COMPARISONS,
    EXTENSION_OPERATORS,
    MANY_VALUES,
    MAX_CONDITIONS,
    MAX_FILTER_BYTES,
    MAX_FILTER_VALUES,
    MAX_JSON_PATH_DEPTH,
    MAX_VALUES,
    NO_VALUES,
    NULL_OPERATORS,
    OPERATORS,
    OPERATORS_BY_KIND,
    RANGES,
)
from eventpipe.query.values import parse_datetime, typed_value
from eventpipe.schemas import EVENT_FIELDS, Field


class FilterError(ValueError):
    """A filter that cannot be run: `parameter` names the offending part, `reason` says why."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A resolved `property`: its schema field, the schema path to it (`("context",
    "browser", "name")`) and, in a json column, the keys inside it (() for the whole
    value; None for a typed property)."""

    property: str
    field: Field
    path: tuple[str, ...]
    json_path: tuple[str, ...] | None = None

    @property
    def kind(self) -> str:
        return self.field.kind

    def operators(self) -> tuple[str, ...]:
        """The operators this property accepts."""
        ops = OPERATORS_BY_KIND[self.field.kind]
        if self.field.read_optional:  # json columns have every operator already
            ops = tuple(dict.fromkeys((*ops, *NULL_OPERATORS)))
        return ops


@dataclass(frozen=True)
class Condition:
    """One validated condition: `values` as sent (text), `operands` parsed for the
    property's type (on json paths: the text, a datetime for the date operators)."""

    target: Target
    operator: str
    values: tuple[str, ...]
    operands: tuple[object, ...]


@dataclass(frozen=True)
class Filter:
    """A validated filter: `logical` is "and" or "or"; no conditions matches every row."""

    logical: str
    conditions: tuple[Condition, ...]

    @property
    def all_must_hold(self) -> bool:
        """Whether every match meets each condition (`and`, or a single condition)."""
        return self.logical == "and" or len(self.conditions) == 1

    @property
    def columns(self) -> frozenset[str]:
        """The top-level columns the conditions read."""
        return frozenset(c.target.path[0] for c in self.conditions)

    def date_bounds(self) -> tuple[dt.date | None, dt.date | None]:
        """(min, max) UTC dates of `timestamp` every match lies within (None: unbounded)."""
        if not self.all_must_hold:
            return None, None
        bounds = [_date_bounds(c) for c in self.conditions]
        lows = [low for low, _ in bounds if low is not None]
        highs = [high for _, high in bounds if high is not None]
        return (max(lows) if lows else None), (min(highs) if highs else None)


@dataclass(frozen=True)
class IndexedCondition:
    """A condition that every match of its filter meets, on a path inside a json column
    or on one of the columns the serving index holds (`pointer` "", values as the index's
    text): the index can look its rows up (see eventpipe.serving.index_lookup)."""

    column: str
    pointer: str
    operator: str
    values: tuple[str, ...]


def index_conditions(
    tree: Filter, indexed_columns: Collection[str], integer_columns: Collection[str]
) -> tuple[IndexedCondition, ...]:
    """The conditions of `tree` that every match meets and a serving index holding json
    values and `indexed_columns` (those in `integer_columns` as decimal text) can look up."""
    if not tree.all_must_hold:
        return ()
    found = []
    for c in tree.conditions:
        target = c.target
        if target.json_path:
            pointer = json_pointer(target.json_path)
            found.append(IndexedCondition(target.field.name, pointer, c.operator, c.values))
        elif target.property in integer_columns:
            if c.operator in ("is", "is one of"):
                texts = tuple(str(v) for v in c.operands)
                found.append(IndexedCondition(target.property, "", c.operator, texts))
        elif target.property in indexed_columns:
            found.append(IndexedCondition(target.property, "", c.operator, c.values))
    return tuple(found)


def json_pointer(path: Sequence[str]) -> str:
    """The RFC 6901 JSON pointer of a key path (`~` and `/` escaped)."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)


def valid_text(value: str, parameter: str) -> str:
    """`value`, or a FilterError naming `parameter` when it is not valid Unicode (a lone
    surrogate, which JSON's `\\ud800` escape can carry and no engine can take)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise FilterError(parameter, f"is not valid Unicode (lone surrogate {bad})") from None
    return value


def resolve_property(name: object, parameter: str = "property") -> Target:
    """The schema field at `name`, or a FilterError naming `parameter`."""
    if not isinstance(name, str) or not name:
        raise FilterError(parameter, "must be a non-empty string")
    parts = valid_text(name, parameter).split(".")
    fields: Sequence[Field] = EVENT_FIELDS
    for index, part in enumerate(parts):
        found = next((f for f in fields if f.name == part), None)
        if found is None:
            raise FilterError(parameter, f"unknown property {name!r}")
        path = tuple(parts[: index + 1])
        if found.kind == "json":
            keys = tuple(parts[index + 1 :])
            if any(key == "" for key in keys):
                raise FilterError(parameter, f"empty key in json path {name!r}")
            if len(keys) > MAX_JSON_PATH_DEPTH:
                raise FilterError(parameter, f"json path deeper than {MAX_JSON_PATH_DEPTH}")
            return Target(name, found, path, keys)
        if found.kind != "object":
            if index != len(parts) - 1:
                raise FilterError(parameter, f"unknown property {name!r} ({part!r} has no fields)")
            return Target(name, found, path)
        fields = found.children
    children = ", ".join(f"{name}.{c.name}" for c in fields)
    raise FilterError(parameter, f"{name!r} is an object; use one of: {children}")


def _values(raw: object, operator: str, parameter: str) -> tuple[str, ...]:
    """The condition's values as strings, checked against the operator's value count."""
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise FilterError(parameter, "must be an array of strings")
    values: list[str] = []
    for i, v in enumerate(raw):
        if isinstance(v, bool):
            values.append("true" if v else "false")
        elif isinstance(v, str):
            values.append(valid_text(v, f"{parameter}[{i}]"))
        elif isinstance(v, int | float):
            values.append(json.dumps(v))
        else:
            raise FilterError(f"{parameter}[{i}]", "must be a string")
    n = len(values)
    if operator in NO_VALUES:
        expected_ok, expected = n == 0, "no values"
    elif operator in RANGES:
        expected_ok, expected = n == 2, "exactly 2 values"
    elif operator in MANY_VALUES:
        expected_ok, expected = 1 <= n <= MAX_VALUES, f"1 to {MAX_VALUES} values"
    else:
        expected_ok, expected = n == 1, "exactly 1 value"
    if not expected_ok:
        raise FilterError(parameter, f"operator {operator!r} takes {expected}, got {n}")
    return tuple(values)


def _operands(target: Target, operator: str, values: tuple[str, ...], where: str) -> tuple:
    """The values parsed for the property's type (FilterError naming `values[i]`)."""
    if target.kind == "json":
        if operator not in DATE_COMPARISONS:
            return values
        try:
            return (parse_datetime(values[0]),)
        except ValueError as exc:
            raise FilterError(f"{where}.values[0]", str(exc)) from None
    operands = []
    for i, text in enumerate(values):
        try:
            operands.append(typed_value(target.field, text))
        except ValueError as exc:
            raise FilterError(
                f"{where}.values[{i}]", f"{exc} ({target.kind} property {target.property!r})"
            ) from None
    return tuple(operands)


def parse_condition(condition: object, where: str) -> Condition:
    """One validated condition of a decoded filter (`where` names it in errors)."""
    if not isinstance(condition, dict):
        raise FilterError(where, "must be an object with property, operator and values")
    unknown = set(condition) - {"property", "operator", "values"}
    if unknown:
        raise FilterError(where, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
    target = resolve_property(condition.get("property"), f"{where}.property")
    operator = condition.get("operator")
    if not isinstance(operator, str) or operator not in (*OPERATORS, *EXTENSION_OPERATORS):
        raise FilterError(f"{where}.operator", f"unknown operator {operator!r}")
    if operator not in target.operators():
        raise FilterError(
            f"{where}.operator",
            f"operator {operator!r} is not valid for {target.kind} property "
            f"{target.property!r}; valid: {', '.join(target.operators())}",
        )
    values = _values(condition.get("values"), operator, f"{where}.values")
    return Condition(target, operator, values, _operands(target, operator, values, where))


def filter_from_document(document: object, parameter: str) -> Filter:
    """The filter of a decoded filter document, validated against the event schema."""
    if not isinstance(document, dict):
        raise FilterError(parameter, "must be a JSON object with logical and conditions")
    unknown = set(document) - {"logical", "conditions"}
    if unknown:
        raise FilterError(parameter, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
    logical = document.get("logical")
    if logical not in ("and", "or"):
        raise FilterError(f"{parameter}.logical", 'must be "and" or "or"')
    conditions = document.get("conditions")
    if not isinstance(conditions, list):
        raise FilterError(f"{parameter}.conditions", "must be an array of conditions")
    if len(conditions) > MAX_CONDITIONS:
        raise FilterError(
            f"{parameter}.conditions", f"at most {MAX_CONDITIONS} conditions, got {len(conditions)}"
        )
    counted = sum(
        len(c["values"])
        for c in conditions
        if isinstance(c, dict) and isinstance(c.get("values"), list)
    )
    if counted > MAX_FILTER_VALUES:
        raise FilterError(
            f"{parameter}.conditions",
            f"at most {MAX_FILTER_VALUES} values in all conditions together, got {counted}",
        )
    parsed = (parse_condition(c, f"{parameter}.conditions[{i}]") for i, c in enumerate(conditions))
    return Filter(logical, tuple(parsed))


def parse_filter(text: str | None, parameter: str) -> Filter | None:
    """The filter of the `filter` query parameter (JSON text), or None when absent/blank."""
    if text is None or not text.strip():
        return None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILTER_BYTES:
        raise FilterError(parameter, f"larger than {MAX_FILTER_BYTES // 1024} KB")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FilterError(parameter, f"is not valid JSON: {exc}") from None
    return filter_from_document(document, parameter)


def _date_bounds(condition: Condition) -> tuple[dt.date | None, dt.date | None]:
    """(min, max) UTC dates of `timestamp` implied by one condition; None where unbounded."""
    if condition.target.property != "timestamp":
        return None, None
    days = sorted(v.date() for v in condition.operands)  # type: ignore[attr-defined]
    operator = condition.operator
    if operator in ("is", "is between"):  # datetimes take no `is one of`
        return days[0], days[-1]
    if operator in ("is before", "is on or before"):
        return None, days[0]
    if operator in ("is after", "is on or after"):
        return days[0], None
    return None, None
