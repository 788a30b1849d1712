"""The filter language of GET /v1/events (seed 000), compiled to a parameterised SQL predicate.

A filter is `{"logical": "and"|"or", "conditions": [{"property", "operator", "values"}]}`.
Property names are resolved against the schema and only schema names ever reach the SQL
text; every value, and every JSON key, is bound as a parameter. A bad filter is a 400
naming the operator, property or `values[i]`. Operators by type, values and the rules
of null and missing keys: `FILTER_LANGUAGE` (served on `/docs`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from eventpipe.schemas import EVENT_FIELDS, Field
from eventpipe.schemas.ip_addresses import IP_RULE, analyse_ip
from eventpipe.serving.conditions import (
    COMPARISONS,
    DATE_COMPARISONS,
    NUMBER_RE,
    IndexedCondition,
    parse_datetime,
    parse_float,
)
from eventpipe.serving.index_format import INDEXED_COLUMNS, INTEGER_COLUMNS
from eventpipe.serving.predicate import Predicate, quote_identifier

FILTER_LANGUAGE = """The filter language of GET /v1/events (seed 000), compiled to a parameterised SQL predicate.

A filter is `{"logical": "and"|"or", "conditions": [{"property", "operator", "values"}]}`.
`property` is a column of the event schema, a dotted path into the nested `context`
(`context.browser.name`), or a dotted path into a json column (`properties.plan`,
`traits.address.city`; a segment of digits also indexes a JSON array). Property names
are resolved against the schema and only schema names ever reach the SQL text; every
value, and every JSON key, is bound as a parameter.

Operators by property type (a mismatch is a 400 naming the operator and property):

- string: is, is not, is one of, is not one of, contains, does not contain, starts
  with, ends with, is empty, is not empty, is less than (or equal to), is greater
  than (or equal to), is between, is not between (comparisons are by code point);
- int, float, decimal: is, is not, is one of, is not one of, the four comparisons,
  is between, is not between;
- datetime: is, is not, is before, is on or before, is after, is on or after, is
  between, is not between;
- boolean: is true, is false;  uuid, ip: is, is not;
- every optional property also takes is null / is not null;
- json columns and paths into them: all 26 operators.

Values: none for is true/false, is (not) empty, is (not) null, exists, does not exist;
two for is (not) between; 1 to 1000 for is (not) one of; exactly one otherwise. Each
is parsed for the property's type (integers within the bit size, finite numbers, ISO
8601 datetimes, UUIDs, IP addresses) or refused with a 400 naming `values[i]`; text
that is not valid Unicode (a lone surrogate such as `"\\ud800"`) is a 400 too. At most
100 conditions, 3,000 values in all the conditions together, and 64 KB of filter JSON.
A long `is one of` list is matched with one hash lookup per row, not a comparison per
value.

Semantics of null and missing values (the whole rule set):

- `is null` is true for a null column or nested field; for a json path it is true when
  the key is missing, when its value is JSON `null`, or when the json column is null.
  `is not null` is its exact complement.
- `exists` / `does not exist` (json paths only) test whether the key is present at
  all; a key holding JSON `null` exists.
- Every other operator is false on a null or missing value, negative ones included:
  `is not`, `is not one of`, `does not contain`, `is not between`, `is not empty` match
  only values that are present and not null.
- String operators are case-sensitive; `contains`/`starts with`/`ends with` take the
  value literally (no wildcards). `is empty` is true for `""` only (and, on json paths,
  for `[]` and `{}` too).
- `is between` / `is not between` are inclusive on both ends; when the first value is
  greater than the second, `is between` matches nothing.
- Datetime values are ISO 8601 (`2025-10-20`, `2025-10-20T16:15:24.010Z`,
  `...+02:00`); without an offset they are UTC. `is` compares to the microsecond.
- On json paths a value is compared according to the JSON type of the stored value:
  JSON strings as text, JSON numbers numerically (when the operand is a number; as
  64-bit floats), JSON booleans with `true`/`false`. So `properties.n is "5"` matches
  both `5` and `"5"`. The date operators (`is before`...) match JSON strings that
  parse as timestamps. Arrays and objects only match `is empty`, `is not empty`,
  `is not`, `is not one of`, `is null`-family and `exists`-family operators.
"""
"""The reference of the filter language, served on the API's `/docs` page."""

MAX_FILTER_BYTES = 64 * 1024
MAX_CONDITIONS = 100
MAX_VALUES = 1000
MAX_FILTER_VALUES = 3000
"""Most values in all the conditions of one filter together."""
INLINE_VALUES = 16
"""A longer `is one of` list is bound as one list parameter and matched by a hash join."""
MAX_JSON_PATH_DEPTH = 32

OPERATORS: tuple[str, ...] = (
    "is",
    "is not",
    *COMPARISONS,
    "is between",
    "is not between",
    "contains",
    "does not contain",
    "is one of",
    "is not one of",
    "starts with",
    "ends with",
    *DATE_COMPARISONS,
    "is true",
    "is false",
    "is empty",
    "is not empty",
    "is null",
    "is not null",
    "exists",
    "does not exist",
)

_RANGES = ("is between", "is not between")
_NUMBER_OPERATORS = ("is", "is not", "is one of", "is not one of", *COMPARISONS, *_RANGES)
OPERATORS_BY_KIND: dict[str, tuple[str, ...]] = {
    "string": (
        *_NUMBER_OPERATORS,
        "contains",
        "does not contain",
        "starts with",
        "ends with",
        "is empty",
        "is not empty",
    ),
    "int": _NUMBER_OPERATORS,
    "float": _NUMBER_OPERATORS,
    "decimal": _NUMBER_OPERATORS,
    "datetime": ("is", "is not", *DATE_COMPARISONS, *_RANGES),
    "boolean": ("is true", "is false"),
    "uuid": ("is", "is not"),
    "ip": ("is", "is not"),
    "json": OPERATORS,
}
NULL_OPERATORS = ("is null", "is not null")

_NO_VALUES = frozenset(
    (
        "is true",
        "is false",
        "is empty",
        "is not empty",
        "is null",
        "is not null",
        "exists",
        "does not exist",
    )
)
_MANY_VALUES = frozenset(("is one of", "is not one of"))

_INT_RE = re.compile(r"[+-]?[0-9]{1,20}")
_JSON_NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"


class FilterError(ValueError):
    """A filter that cannot be run: `parameter` names the offending part, `reason` says why."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A resolved `property`: its schema field, its SQL column and the JSON path, if any."""

    property: str
    field: Field
    column_sql: str
    json_path: tuple[str, ...] | None = None  # set for json columns ((), the whole value)

    @property
    def kind(self) -> str:
        return self.field.kind

    def operators(self) -> tuple[str, ...]:
        """The operators this property accepts."""
        ops = OPERATORS_BY_KIND[self.field.kind]
        if self.field.kind != "json" and self.field.read_optional:
            ops = (*ops, *NULL_OPERATORS)
        return ops


def resolve_property(name: object, parameter: str = "property") -> Target:
    """The schema field at `name`, or a FilterError naming `parameter`."""
    if not isinstance(name, str) or not name:
        raise FilterError(parameter, "must be a non-empty string")
    parts = valid_text(name, parameter).split(".")
    fields: Sequence[Field] = EVENT_FIELDS
    column = "t"
    for index, part in enumerate(parts):
        found = next((f for f in fields if f.name == part), None)
        if found is None:
            raise FilterError(parameter, f"unknown property {name!r}")
        column += "." + quote_identifier(found.name)
        if found.kind == "json":
            path = tuple(parts[index + 1 :])
            if any(key == "" for key in path):
                raise FilterError(parameter, f"empty key in json path {name!r}")
            if len(path) > MAX_JSON_PATH_DEPTH:
                raise FilterError(parameter, f"json path deeper than {MAX_JSON_PATH_DEPTH}")
            return Target(name, found, column, path)
        if found.kind == "object":
            if index == len(parts) - 1:
                children = ", ".join(f"{name}.{c.name}" for c in found.children)
                raise FilterError(parameter, f"{name!r} is an object; use one of: {children}")
            fields = found.children
            continue
        if index != len(parts) - 1:
            raise FilterError(parameter, f"unknown property {name!r} ({part!r} has no fields)")
        return Target(name, found, column)
    raise FilterError(parameter, f"unknown property {name!r}")  # pragma: no cover


def json_pointer(path: Sequence[str]) -> str:
    """The RFC 6901 JSON pointer of a key path (`~` and `/` escaped)."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)


# --- value parsing ------------------------------------------------------------------


def parse_int(text: str, bit_size: int) -> int:
    """An integer within the signed range of `bit_size` bits, or ValueError."""
    if not _INT_RE.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not an integer")
    value = int(text.strip())
    limit = 1 << (bit_size - 1)
    if not -limit <= value < limit:
        raise ValueError(f"{text!r} is out of range for a {bit_size}-bit int")
    return value


def parse_decimal(text: str) -> Decimal:
    """A decimal number, or ValueError."""
    if not NUMBER_RE.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a decimal number")
    try:
        return Decimal(text.strip())
    except InvalidOperation as exc:  # pragma: no cover - the regex already checked
        raise ValueError(f"{text!r} is not a decimal number") from exc


def parse_uuid(text: str) -> str:
    """The canonical (lowercase, hyphenated) form of a UUID, or ValueError."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not a UUID") from None


def parse_ip(text: str) -> str:
    """The stored form of a client IP address (`schemas.ip_addresses`: `::ffff:192.0.2.1`
    is `192.0.2.1`), or ValueError (not an address, zone-scoped or multicast)."""
    canonical = analyse_ip(text.strip()).canonical
    if canonical is None:
        raise ValueError(f"{text!r} is not {IP_RULE}")
    return canonical


def typed_value(f: Field, text: str) -> object:
    """The value `text` converted to the type of field `f` (ValueError when it does not fit)."""
    if f.kind == "int":
        return parse_int(text, f.bit_size or 64)
    if f.kind == "float":
        return parse_float(text)
    if f.kind == "decimal":
        return parse_decimal(text)
    if f.kind == "datetime":
        return parse_datetime(text)
    if f.kind == "uuid":
        return parse_uuid(text)
    if f.kind == "ip":
        return parse_ip(text)
    return text


# --- compilation --------------------------------------------------------------------


class _Params:
    """Named query parameters `$p0`, `$p1`..."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self._pointers: dict[str, str] = {}
        self._extracts: dict[tuple[str, str], str] = {}  # (column SQL, pointer) -> alias

    def add(self, value: object) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return "$" + name

    def pointer(self, pointer: str) -> str:
        """The parameter of a JSON pointer, one per distinct pointer: the same extraction
        written the same way, so that DuckDB computes it once per row for every condition
        on that path."""
        name = self._pointers.get(pointer)
        if name is None:
            name = self._pointers[pointer] = self.add(pointer)
        return name

    def extract(self, column_sql: str, pointer: str) -> str:
        """The json value at `pointer` in `column_sql`, as a column of the source
        (`table_source`)."""
        key = (column_sql, pointer)
        alias = self._extracts.get(key)
        if alias is None:
            alias = self._extracts[key] = f"_j{len(self._extracts)}"
        return f"t.{alias}"

    def extracts(self) -> tuple[tuple[str, str], ...]:
        """(alias, SQL) of every json value `extract` named."""
        return tuple(
            (alias, f"json_extract({column}, {self.pointer(pointer)})")
            for (column, pointer), alias in self._extracts.items()
        )

    def one_of(self, expression: str, values: Sequence[object]) -> str:
        """`expression IN (values)`: a few values inline, more as a semi-join on one list
        parameter (DuckDB compares a long IN list value by value on every row: three lists
        of 1,000 json values took minutes and gigabytes)."""
        if len(values) <= INLINE_VALUES:
            return f"{expression} IN ({', '.join(self.add(v) for v in values)})"
        return f"{expression} IN (SELECT unnest({self.add(list(values))}))"


def valid_text(value: str, parameter: str) -> str:
    """`value`, or a FilterError naming `parameter` when it is not valid Unicode (a lone
    surrogate, which JSON's `\\ud800` escape can carry and no engine can take)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise FilterError(parameter, f"is not valid Unicode (lone surrogate {bad})") from None
    return value


def _values(raw: object, operator: str, parameter: str) -> list[str]:
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
    if operator in _NO_VALUES:
        expected_ok, expected = n == 0, "no values"
    elif operator in _RANGES:
        expected_ok, expected = n == 2, "exactly 2 values"
    elif operator in _MANY_VALUES:
        expected_ok, expected = 1 <= n <= MAX_VALUES, f"1 to {MAX_VALUES} values"
    else:
        expected_ok, expected = n == 1, "exactly 1 value"
    if not expected_ok:
        raise FilterError(parameter, f"operator {operator!r} takes {expected}, got {n}")
    return values


def _typed_sql(
    target: Target, operator: str, values: list[str], params: _Params, where: str
) -> str:
    """SQL for a condition on a typed (non-json) column."""
    col = target.column_sql
    if operator == "is null":
        return f"{col} IS NULL"
    if operator == "is not null":
        return f"{col} IS NOT NULL"
    if operator == "is true":
        return f"{col} = TRUE"
    if operator == "is false":
        return f"{col} = FALSE"
    if operator == "is empty":
        return f"{col} = ''"
    if operator == "is not empty":
        return f"{col} <> ''"
    parsed: list[object] = []
    for i, text in enumerate(values):
        try:
            parsed.append(typed_value(target.field, text))
        except ValueError as exc:
            raise FilterError(
                f"{where}.values[{i}]", f"{exc} ({target.kind} property {target.property!r})"
            ) from None
    if operator in ("is one of", "is not one of"):
        # Decimals as doubles: a list of mixed scales has no single DECIMAL type.
        options = [float(v) if isinstance(v, Decimal) else v for v in dict.fromkeys(parsed)]
        negate = "NOT " if operator == "is not one of" else ""
        return f"{negate}({params.one_of(col, options)})"
    typed = [params.add(v) for v in parsed]
    if operator == "is":
        return f"{col} = {typed[0]}"
    if operator == "is not":
        return f"{col} <> {typed[0]}"
    if operator in COMPARISONS:
        return f"{col} {COMPARISONS[operator]} {typed[0]}"
    if operator in DATE_COMPARISONS:
        return f"{col} {DATE_COMPARISONS[operator]} {typed[0]}"
    if operator == "is between":
        return f"{col} BETWEEN {typed[0]} AND {typed[1]}"
    if operator == "is not between":
        return f"NOT ({col} BETWEEN {typed[0]} AND {typed[1]})"
    if operator == "contains":
        return f"contains({col}, {typed[0]})"
    if operator == "does not contain":
        return f"NOT contains({col}, {typed[0]})"
    if operator == "starts with":
        return f"starts_with({col}, {typed[0]})"
    if operator == "ends with":
        return f"suffix({col}, {typed[0]})"
    raise AssertionError(operator)  # pragma: no cover - the operator table is checked first


def _is_plain_text(value: str) -> bool:
    """Whether `value` is written the same inside a JSON string (nothing to escape)."""
    return all(" " <= c != "\x7f" and c not in '"\\' for c in value)


def _number_or_none(text: str) -> float | None:
    try:
        return parse_float(text)
    except ValueError:
        return None


def _json_sql(target: Target, operator: str, values: list[str], params: _Params, where: str) -> str:
    """SQL for a condition on a json column or a path inside one."""
    if target.json_path:
        j = params.extract(target.column_sql, json_pointer(target.json_path))
    else:
        j = f"CAST({target.column_sql} AS JSON)"
    jtype = f"json_type({j})"
    text = f"({j} ->> '$')"
    number = f"TRY_CAST({j} AS DOUBLE)"
    is_string = f"{jtype} = 'VARCHAR'"
    is_number = f"{jtype} IN {_JSON_NUMBER_TYPES}"
    present = f"({j} IS NOT NULL AND {jtype} <> 'NULL')"

    def equals_any(options: list[str]) -> str:
        """Any option equal to the value in its JSON type (string, number or boolean):
        at most four branches, whatever the number of options."""
        branches: list[str] = []
        unique = list(dict.fromkeys(options))
        plain = [v for v in unique if target.json_path and _is_plain_text(v)]
        if plain:
            # One JSON parse per row: compare the extracted value's JSON text ('"pro"').
            quoted = [json.dumps(v, ensure_ascii=False) for v in plain]
            branches.append(f"({params.one_of(f'CAST({j} AS VARCHAR)', quoted)})")
        others = [v for v in unique if v not in plain]
        if others:
            branches.append(f"({is_string} AND {params.one_of(text, others)})")
        numbers = list(dict.fromkeys(n for n in map(_number_or_none, unique) if n is not None))
        if numbers:
            branches.append(f"({is_number} AND {params.one_of(number, numbers)})")
        for value in ("true", "false"):
            if value in unique:
                branches.append(
                    f"({jtype} = 'BOOLEAN' AND TRY_CAST({j} AS BOOLEAN) = {value.upper()})"
                )
        return "(" + " OR ".join(branches) + ")"

    def compare(op: str, value: str) -> str:
        branches = [f"({is_string} AND {text} {op} {params.add(value)})"]
        number_value = _number_or_none(value)
        if number_value is not None:
            branches.append(f"({is_number} AND {number} {op} {params.add(number_value)})")
        return "(" + " OR ".join(branches) + ")"

    def between(negate: bool) -> str:
        low, high = values
        neg = "NOT " if negate else ""
        branches = [
            f"({is_string} AND {neg}({text} BETWEEN {params.add(low)} AND {params.add(high)}))"
        ]
        low_n, high_n = _number_or_none(low), _number_or_none(high)
        if low_n is not None and high_n is not None:
            branches.append(
                f"({is_number} AND {neg}({number} BETWEEN {params.add(low_n)} "
                f"AND {params.add(high_n)}))"
            )
        return "(" + " OR ".join(branches) + ")"

    empty = (
        f"(({is_string} AND {text} = '') OR ({jtype} = 'ARRAY' AND json_array_length({j}) = 0)"
        f" OR ({jtype} = 'OBJECT' AND len(json_keys({j})) = 0))"
    )
    if operator == "exists":
        return f"{j} IS NOT NULL"
    if operator == "does not exist":
        return f"{j} IS NULL"
    if operator == "is null":
        return f"({j} IS NULL OR {jtype} = 'NULL')"
    if operator == "is not null":
        return present
    if operator == "is true":
        return f"({jtype} = 'BOOLEAN' AND TRY_CAST({j} AS BOOLEAN) = TRUE)"
    if operator == "is false":
        return f"({jtype} = 'BOOLEAN' AND TRY_CAST({j} AS BOOLEAN) = FALSE)"
    if operator == "is empty":
        return empty
    if operator == "is not empty":
        return f"({present} AND NOT {empty})"
    if operator in ("is", "is one of"):
        return equals_any(values)
    if operator in ("is not", "is not one of"):
        return f"({present} AND NOT {equals_any(values)})"
    if operator in COMPARISONS:
        return compare(COMPARISONS[operator], values[0])
    if operator in DATE_COMPARISONS:
        try:
            moment = parse_datetime(values[0])
        except ValueError as exc:
            raise FilterError(f"{where}.values[0]", str(exc)) from None
        op = DATE_COMPARISONS[operator]
        return f"({is_string} AND TRY_CAST({text} AS TIMESTAMPTZ) {op} {params.add(moment)})"
    if operator == "is between":
        return between(negate=False)
    if operator == "is not between":
        return between(negate=True)
    string_ops = {
        "contains": "contains",
        "does not contain": "contains",
        "starts with": "starts_with",
        "ends with": "suffix",
    }
    neg = "NOT " if operator == "does not contain" else ""
    return f"({is_string} AND {neg}{string_ops[operator]}({text}, {params.add(values[0])}))"


def _date_bounds(target: Target, operator: str, values: list[str]) -> tuple[dt.date | None, ...]:
    """(min, max) UTC dates of `timestamp` implied by one condition; None where unbounded."""
    if target.property != "timestamp":
        return None, None
    days = sorted(parse_datetime(v).date() for v in values)
    if operator in ("is", "is one of", "is between"):
        return days[0], days[-1]
    if operator in ("is before", "is on or before"):
        return None, days[0]
    if operator in ("is after", "is on or after"):
        return days[0], None
    return None, None


def compile_condition(
    condition: object, params: _Params, where: str
) -> tuple[str, tuple[dt.date | None, ...], IndexedCondition | None]:
    """SQL of one condition, the timestamp date bounds it implies, and the condition itself
    when the serving index can look it up."""
    if not isinstance(condition, dict):
        raise FilterError(where, "must be an object with property, operator and values")
    unknown = set(condition) - {"property", "operator", "values"}
    if unknown:
        raise FilterError(where, f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
    target = resolve_property(condition.get("property"), f"{where}.property")
    operator = condition.get("operator")
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise FilterError(f"{where}.operator", f"unknown operator {operator!r}")
    if operator not in target.operators():
        raise FilterError(
            f"{where}.operator",
            f"operator {operator!r} is not valid for {target.kind} property "
            f"{target.property!r}; valid: {', '.join(target.operators())}",
        )
    values = _values(condition.get("values"), operator, f"{where}.values")
    if target.kind == "json":
        sql = _json_sql(target, operator, values, params, where)
        indexed_condition = None
        if target.json_path:
            pointer = json_pointer(target.json_path)
            indexed_condition = IndexedCondition(
                target.field.name, pointer, operator, tuple(values)
            )
        return sql, (None, None), indexed_condition
    sql = _typed_sql(target, operator, values, params, where)
    indexed_condition = None
    if target.property in INTEGER_COLUMNS:
        if operator in ("is", "is one of"):  # the index holds the decimal text
            texts = tuple(str(int(v)) for v in values)  # valid integers: _typed_sql checked
            indexed_condition = IndexedCondition(target.property, "", operator, texts)
    elif target.property in INDEXED_COLUMNS:
        indexed_condition = IndexedCondition(target.property, "", operator, tuple(values))
    return sql, _date_bounds(target, operator, values), indexed_condition


def compile_filter(document: object, parameter: str = "filter") -> Predicate:
    """The predicate of a decoded filter document, validated against the event schema."""
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
    if not conditions:
        return Predicate("TRUE")
    params = _Params()
    parts: list[str] = []
    bounds: list[tuple[dt.date | None, ...]] = []
    indexed_conditions: list[IndexedCondition] = []
    columns: set[str] = set()
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
    for i, condition in enumerate(conditions):
        sql, bound, indexed_condition = compile_condition(
            condition, params, f"{parameter}.conditions[{i}]"
        )
        columns.add(condition["property"].split(".")[0])  # a valid property: compiled
        parts.append(f"({sql})")
        bounds.append(bound)
        if indexed_condition is not None:
            indexed_conditions.append(indexed_condition)
    extracts = params.extracts()
    predicate = Predicate(f" {logical.upper()} ".join(parts), params.values)
    predicate.extracts = extracts
    predicate.columns = frozenset(columns)
    if logical == "and" or len(bounds) == 1:
        predicate.indexed_conditions = tuple(indexed_conditions)
        lows = [low for low, _ in bounds if low is not None]
        highs = [high for _, high in bounds if high is not None]
        predicate.min_date = max(lows) if lows else None
        predicate.max_date = min(highs) if highs else None
    return predicate


def parse_filter(text: str | None, parameter: str = "filter") -> Predicate | None:
    """The predicate of the `filter` query parameter (JSON text), or None when absent/blank."""
    if text is None or not text.strip():
        return None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILTER_BYTES:
        raise FilterError(parameter, f"larger than {MAX_FILTER_BYTES // 1024} KB")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FilterError(parameter, f"is not valid JSON: {exc}") from None
    return compile_filter(document, parameter)
