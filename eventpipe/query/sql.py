"""A filter tree rendered as a parameterised SQL predicate, for the engine of a `Dialect`.

The rules of the language live here once (FILTER_LANGUAGE in `eventpipe.query.language`):
nulls and missing json keys match only `is null` / `does not exist`, every other operator
is false on them; a json value compares by its JSON type. A dialect only says how its
engine spells each primitive (a column, a json value and its type, a list membership, a
parameter). Property names come from the schema; every value and json key is a parameter.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from eventpipe.query.language import COMPARISONS, DATE_COMPARISONS
from eventpipe.query.tree import Condition, Filter, IndexedCondition
from eventpipe.query.values import number_or_none


class Bindings:
    """The parameters of one rendered filter, and the per-row values it reads as columns
    of its source (`extracts`: alias, SQL)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.values: dict[str, object] = {}
        self._once: dict[Hashable, str] = {}
        self._extracts: dict[str, str] = {}  # SQL -> alias

    def add(self, value: object) -> str:
        """The placeholder of a new parameter holding `value`."""
        name = f"p{len(self.values)}"
        self.values[name] = value
        return self.dialect.placeholder(name)

    def add_once(self, value: Hashable) -> str:
        """The placeholder of `value`, one parameter per distinct value added this way."""
        if value not in self._once:
            self._once[value] = self.add(value)
        return self._once[value]

    def extract(self, sql: str) -> str:
        """`sql` as a column of the source (`t._j0`...), computed once per row however many
        conditions read it."""
        alias = self._extracts.setdefault(sql, f"_j{len(self._extracts)}")
        return f"t.{alias}"

    @property
    def extracts(self) -> tuple[tuple[str, str], ...]:
        return tuple((alias, sql) for sql, alias in self._extracts.items())


class Dialect(Protocol):
    """How one SQL engine spells the primitives of the filter language (over table `t`)."""

    name: str

    def placeholder(self, name: str) -> str:
        """The reference to the named parameter `name`."""
        ...

    def column(self, path: tuple[str, ...]) -> str:
        """A column or nested field of `t` by its schema path."""
        ...

    def json_value(self, bindings: Bindings, column: str, keys: tuple[str, ...]) -> str:
        """The JSON value at `keys` in json column `column` (SQL NULL when missing)."""
        ...

    def json_is(self, value: str, kind: str) -> str:
        """Whether JSON `value` is a `kind`: string, number, boolean or null (JSON null)."""
        ...

    def json_text(self, value: str) -> str:
        """A JSON string's text."""
        ...

    def json_number(self, value: str) -> str:
        """A JSON number as a DOUBLE (NULL for other types)."""
        ...

    def json_bool(self, value: str) -> str:
        """A JSON boolean as a BOOLEAN."""
        ...

    def json_spelling(self, value: str) -> str | None:
        """The JSON text of a value (`"pro"`), when the engine writes it minimally."""
        ...

    def json_empty_container(self, value: str) -> str:
        """Whether JSON `value` is `[]` or `{}` (false, not NULL, for anything else)."""
        ...

    def to_timestamp(self, text: str) -> str:
        """Text as a UTC timestamp, NULL when it is not one."""
        ...

    def json_array_has_text(self, bindings: Bindings, value: str, texts: Sequence[str]) -> str:
        """Whether JSON `value` is an array with a JSON string element equal to one of
        `texts` (false, not NULL, otherwise)."""
        ...

    def in_list(self, bindings: Bindings, expression: str, values: Sequence[object]) -> str:
        """Whether `expression` equals one of `values` (distinct, of one type)."""
        ...

    def contains(self, text: str, value: str) -> str:
        """Whether `text` contains `value` literally."""
        ...

    def starts_with(self, text: str, value: str) -> str: ...

    def ends_with(self, text: str, value: str) -> str: ...


@dataclass(frozen=True)
class Predicate:
    """A filter rendered for one dialect: SQL over table alias `t`, its named parameters,
    the json values it reads (`extracts`, see `Bindings`), the top-level columns it reads,
    the tree, the date bounds of `timestamp`, and the conditions the serving index can look
    up (`api.filters`)."""

    sql: str
    params: dict[str, object] = field(default_factory=dict)
    dialect: str = ""
    extracts: tuple[tuple[str, str], ...] = ()
    columns: frozenset[str] = frozenset()
    tree: Filter | None = None
    indexed_conditions: tuple[IndexedCondition, ...] = ()
    groups: tuple[Filter, ...] = ()
    """Filters every match meets besides `tree` (`render_all`): `tree`'s date bounds and
    indexed conditions hold for every match."""

    @property
    def min_date(self) -> dt.date | None:
        """Every match has timestamp's UTC date >= min_date."""
        return self.tree.date_bounds()[0] if self.tree else None

    @property
    def max_date(self) -> dt.date | None:
        """... and <= max_date."""
        return self.tree.date_bounds()[1] if self.tree else None


def render(tree: Filter, dialect: Dialect) -> Predicate:
    """The predicate of `tree` in `dialect`."""
    bindings = Bindings(dialect)
    sql = _filter_sql(tree, bindings, dialect)
    return Predicate(sql, bindings.values, dialect.name, bindings.extracts, tree.columns, tree)


def render_all(tree: Filter, groups: Sequence[Filter], dialect: Dialect) -> Predicate:
    """The predicate of `tree` AND each of `groups` (each an and/or filter of its own) in
    `dialect`: how a condition "a or b" is required next to others. The predicate's `tree`
    is `tree` (its date bounds hold for every match); `groups` are kept beside it."""
    if not groups:
        return render(tree, dialect)
    bindings = Bindings(dialect)
    sql = " AND ".join(f"({_filter_sql(f, bindings, dialect)})" for f in (tree, *groups))
    columns = tree.columns.union(*(g.columns for g in groups))
    return Predicate(
        sql, bindings.values, dialect.name, bindings.extracts, columns, tree, groups=tuple(groups)
    )


def _filter_sql(tree: Filter, bindings: Bindings, dialect: Dialect) -> str:
    """One filter's conditions joined by its `logical` ("TRUE" for none)."""
    parts = [f"({_condition(c, bindings, dialect)})" for c in tree.conditions]
    return f" {tree.logical.upper()} ".join(parts) or "TRUE"


def _condition(condition: Condition, bindings: Bindings, dialect: Dialect) -> str:
    if condition.target.kind == "json":
        return _json_sql(condition, bindings, dialect)
    return _typed_sql(condition, bindings, dialect)


_FIXED = {
    "is null": "{} IS NULL",
    "is not null": "{} IS NOT NULL",
    "is true": "{} = TRUE",
    "is false": "{} = FALSE",
    "is empty": "{} = ''",
    "is not empty": "{} <> ''",
}


def _typed_sql(condition: Condition, bindings: Bindings, dialect: Dialect) -> str:
    """SQL for a condition on a typed (non-json) column or field."""
    col = dialect.column(condition.target.path)
    operator = condition.operator
    if operator in _FIXED:
        return _FIXED[operator].format(col)
    if operator in ("is one of", "is not one of"):
        negate = "NOT " if operator == "is not one of" else ""
        options = list(dict.fromkeys(condition.operands))
        return f"{negate}({dialect.in_list(bindings, col, options)})"
    typed = [bindings.add(v) for v in condition.operands]
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
    return _string_match(dialect, operator, col, typed[0])


def _string_match(dialect: Dialect, operator: str, text: str, value: str) -> str:
    """contains, does not contain, starts with, ends with."""
    if operator == "starts with":
        return dialect.starts_with(text, value)
    if operator == "ends with":
        return dialect.ends_with(text, value)
    negate = "NOT " if operator == "does not contain" else ""
    return f"{negate}{dialect.contains(text, value)}"


def _is_plain_text(value: str) -> bool:
    """Whether `value` is written the same inside a JSON string (nothing to escape)."""
    return all(" " <= c != "\x7f" and c not in '"\\' for c in value)


def _json_sql(condition: Condition, bindings: Bindings, dialect: Dialect) -> str:
    """SQL for a condition on a json column or a path inside one: the rules of nulls,
    missing keys and JSON types."""
    target, operator, values = condition.target, condition.operator, condition.values
    j = dialect.json_value(bindings, target.path[0], target.json_path or ())
    is_string, is_number = dialect.json_is(j, "string"), dialect.json_is(j, "number")
    text, number = dialect.json_text(j), dialect.json_number(j)
    present = f"({j} IS NOT NULL AND NOT {dialect.json_is(j, 'null')})"

    def boolean(value: bool) -> str:
        return (
            f"({dialect.json_is(j, 'boolean')} AND {dialect.json_bool(j)} = {str(value).upper()})"
        )

    def equals_any(options: Sequence[str]) -> str:
        """Any option equal to the value in its JSON type (string, number or boolean):
        at most four branches, whatever the number of options."""
        branches: list[str] = []
        unique = list(dict.fromkeys(options))
        spelling = dialect.json_spelling(j) if target.json_path else None
        plain = {v for v in unique if spelling and _is_plain_text(v)}
        if plain:
            # One JSON parse per row: compare the extracted value's JSON text ('"pro"').
            quoted = [json.dumps(v, ensure_ascii=False) for v in unique if v in plain]
            branches.append(f"({dialect.in_list(bindings, str(spelling), quoted)})")
        others = [v for v in unique if v not in plain]
        if others:
            branches.append(f"({is_string} AND {dialect.in_list(bindings, text, others)})")
        numbers = list(dict.fromkeys(n for n in map(number_or_none, unique) if n is not None))
        if numbers:
            branches.append(f"({is_number} AND {dialect.in_list(bindings, number, numbers)})")
        branches += [boolean(value == "true") for value in ("true", "false") if value in unique]
        return "(" + " OR ".join(branches) + ")"

    def compare(op: str, low: str, high: str | None = None, negate: bool = False) -> str:
        """`op` ("<"... or BETWEEN) on JSON strings as text, on JSON numbers as numbers."""
        neg = "NOT " if negate else ""
        branches = [f"({is_string} AND {neg}({text} {op} {_bound(bindings, low, high)}))"]
        low_n = number_or_none(low)
        high_n = None if high is None else number_or_none(high)
        if low_n is not None and (high is None or high_n is not None):
            right = _bound(bindings, low_n, high_n)
            branches.append(f"({is_number} AND {neg}({number} {op} {right}))")
        return "(" + " OR ".join(branches) + ")"

    if operator == "exists":
        return f"{j} IS NOT NULL"
    if operator == "does not exist":
        return f"{j} IS NULL"
    if operator == "is null":
        return f"({j} IS NULL OR {dialect.json_is(j, 'null')})"
    if operator == "is not null":
        return present
    if operator in ("is true", "is false"):
        return boolean(operator == "is true")
    empty = f"(({is_string} AND {text} = '') OR {dialect.json_empty_container(j)})"
    if operator == "is empty":
        return empty
    if operator == "is not empty":
        return f"({present} AND NOT {empty})"
    if operator in ("is", "is one of"):
        return equals_any(values)
    if operator == "includes one of":
        element = dialect.json_array_has_text(bindings, j, list(dict.fromkeys(values)))
        return f"({equals_any(values)} OR {element})"
    if operator in ("is not", "is not one of"):
        return f"({present} AND NOT {equals_any(values)})"
    if operator in COMPARISONS:
        return compare(COMPARISONS[operator], values[0])
    if operator in ("is between", "is not between"):
        return compare("BETWEEN", values[0], values[1], negate=operator == "is not between")
    if operator in DATE_COMPARISONS:
        moment = bindings.add(condition.operands[0])
        when = dialect.to_timestamp(text)
        return f"({is_string} AND {when} {DATE_COMPARISONS[operator]} {moment})"
    match = _string_match(dialect, operator, text, bindings.add(values[0]))
    return f"({is_string} AND {match})"


def _bound(bindings: Bindings, low: object, high: object | None) -> str:
    """The right-hand side of a comparison (`$p0`) or of a BETWEEN (`$p0 AND $p1`)."""
    first = bindings.add(low)
    return first if high is None else f"{first} AND {bindings.add(high)}"
