"""The DuckDB dialect of the filter language (the lake's read path), and the source
relation that adds a predicate's json values as columns."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from eventpipe.query.language import INLINE_VALUES
from eventpipe.query.sql import Bindings, Predicate
from eventpipe.query.tree import json_pointer

_JSON_TYPES = {
    "string": "= 'VARCHAR'",
    "number": "IN ('BIGINT', 'UBIGINT', 'DOUBLE')",
    "boolean": "= 'BOOLEAN'",
    "null": "= 'NULL'",
}


def quote_identifier(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class DuckDBDialect:
    """DuckDB SQL with `$name` parameters; json values via `json_extract` on a JSON pointer."""

    name = "duckdb"

    def placeholder(self, name: str) -> str:
        return "$" + name

    def column(self, path: tuple[str, ...]) -> str:
        return "t." + ".".join(map(quote_identifier, path))

    def json_value(self, bindings: Bindings, column: str, keys: tuple[str, ...]) -> str:
        col = self.column((column,))
        if not keys:
            return f"CAST({col} AS JSON)"
        pointer = bindings.add_once(json_pointer(keys))
        return bindings.extract(f"json_extract({col}, {pointer})")

    def json_is(self, value: str, kind: str) -> str:
        return f"json_type({value}) {_JSON_TYPES[kind]}"

    def json_text(self, value: str) -> str:
        return f"({value} ->> '$')"

    def json_number(self, value: str) -> str:
        return f"TRY_CAST({value} AS DOUBLE)"

    def json_bool(self, value: str) -> str:
        return f"TRY_CAST({value} AS BOOLEAN)"

    def json_spelling(self, value: str) -> str | None:
        return f"CAST({value} AS VARCHAR)"

    def json_empty_container(self, value: str) -> str:
        kind = f"json_type({value})"
        return (
            f"(({kind} = 'ARRAY' AND json_array_length({value}) = 0)"
            f" OR ({kind} = 'OBJECT' AND len(json_keys({value})) = 0))"
        )

    def to_timestamp(self, text: str) -> str:
        return f"TRY_CAST({text} AS TIMESTAMPTZ)"

    def json_array_has_text(self, bindings: Bindings, value: str, texts: Sequence[str]) -> str:
        strings = f"list_filter(json_extract({value}, '$[*]'), lambda e: json_type(e) = 'VARCHAR')"
        elements = f"list_transform({strings}, lambda e: e ->> '$')"
        wanted = f"CAST({bindings.add(list(texts))} AS VARCHAR[])"
        return f"COALESCE(list_has_any({elements}, {wanted}), FALSE)"

    def in_list(self, bindings: Bindings, expression: str, values: Sequence[object]) -> str:
        """A few values inline, more as a semi-join on one list parameter (DuckDB compares
        a long IN list value by value on every row: three lists of 1,000 json values took
        minutes and gigabytes). Decimals as doubles: mixed scales have no single type."""
        values = [float(v) if isinstance(v, Decimal) else v for v in values]
        if len(values) <= INLINE_VALUES:
            return f"{expression} IN ({', '.join(bindings.add(v) for v in values)})"
        return f"{expression} IN (SELECT unnest({bindings.add(values)}))"

    def contains(self, text: str, value: str) -> str:
        return f"contains({text}, {value})"

    def starts_with(self, text: str, value: str) -> str:
        return f"starts_with({text}, {value})"

    def ends_with(self, text: str, value: str) -> str:
        return f"suffix({text}, {value})"


DUCKDB = DuckDBDialect()


def table_source(relation: str, predicate: Predicate | None) -> str:
    """`relation AS t`, with the json values `predicate`'s conditions read added as columns
    (`_j0`...): each is extracted once per row, however many conditions read it (each
    extraction parses the row's whole json column: 100 conditions on one path took 5.5 s
    instead of 1.1 s over 200k events)."""
    if predicate is None or not predicate.extracts:
        return f"{relation} AS t"
    added = ", ".join(f"{sql} AS {alias}" for alias, sql in predicate.extracts)
    return f"(SELECT *, {added} FROM {relation} AS t) AS t"
