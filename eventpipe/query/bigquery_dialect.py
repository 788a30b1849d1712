"""The BigQuery dialect of the filter language (GoogleSQL, `@name` parameters), and the
typed query parameters of a rendered predicate.

A json path is `JSON_QUERY(column, @path)` with a JSONPath built from the keys (`$."plan"`;
a digit segment also as an array index `[0]`). `is one of` is one ARRAY parameter matched
with `IN UNNEST(@p)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from eventpipe.query.sql import Bindings

if TYPE_CHECKING:
    from google.cloud import bigquery

_PARAM_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "BOOL"),  # before int: bool is an int
    (int, "INT64"),
    (float, "FLOAT64"),
    (Decimal, "BIGNUMERIC"),
    (dt.datetime, "TIMESTAMP"),
    (dt.date, "DATE"),
    (str, "STRING"),
)


def json_paths(keys: tuple[str, ...]) -> list[str]:
    """JSONPaths of a key path: keys quoted (`$."a"`); with digit keys, also as array indexes."""

    def render(as_index: bool) -> str:
        out = "$"
        for key in keys:
            if as_index and key.isdigit():
                out += f"[{int(key)}]"
            else:
                out += '."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return out

    paths = [render(False)]
    if any(k.isdigit() for k in keys):
        paths.append(render(True))
    return paths


class BigQueryDialect:
    """GoogleSQL. The JSON type decides how a value compares: JSON_TYPE is used only for
    the types every engine names alike (boolean, null, array, object); numbers are what
    SAFE.FLOAT64 reads, strings the other scalars JSON_VALUE returns."""

    name = "bigquery"

    def placeholder(self, name: str) -> str:
        return "@" + name

    def column(self, path: tuple[str, ...]) -> str:
        return "t." + ".".join(f"`{part}`" for part in path)

    def json_value(self, bindings: Bindings, column: str, keys: tuple[str, ...]) -> str:
        col = self.column((column,))
        if not keys:
            return col
        found = [f"JSON_QUERY({col}, {bindings.add_once(p)})" for p in json_paths(keys)]
        return found[0] if len(found) == 1 else f"COALESCE({', '.join(found)})"

    def json_is(self, value: str, kind: str) -> str:
        if kind == "number":
            return f"{self.json_number(value)} IS NOT NULL"
        if kind == "string":
            return (
                f"({self.json_text(value)} IS NOT NULL AND {self.json_number(value)} IS NULL"
                f" AND JSON_TYPE({value}) <> 'boolean')"
            )
        return f"JSON_TYPE({value}) = '{kind}'"

    def json_text(self, value: str) -> str:
        return f"JSON_VALUE({value})"

    def json_number(self, value: str) -> str:
        return f"SAFE.FLOAT64({value})"

    def json_bool(self, value: str) -> str:
        return f"LAX_BOOL({value})"

    def json_spelling(self, value: str) -> str | None:
        return None

    def json_empty_container(self, value: str) -> str:
        kind = f"JSON_TYPE({value})"
        array_length = (
            f"CASE WHEN {kind} = 'array' THEN ARRAY_LENGTH(JSON_QUERY_ARRAY({value})) END"
        )
        key_count = f"CASE WHEN {kind} = 'object' THEN ARRAY_LENGTH(JSON_KEYS({value}, 1)) END"
        return f"(COALESCE({array_length} = 0, FALSE) OR COALESCE({key_count} = 0, FALSE))"

    def to_timestamp(self, text: str) -> str:
        return f"SAFE_CAST({text} AS TIMESTAMP)"

    def json_array_has_text(self, bindings: Bindings, value: str, texts: Sequence[str]) -> str:
        element = "_element"
        array = f"CASE WHEN JSON_TYPE({value}) = 'array' THEN JSON_QUERY_ARRAY({value}) END"
        return (
            f"EXISTS(SELECT 1 FROM UNNEST({array}) AS {element}"
            f" WHERE {self.json_is(element, 'string')}"
            f" AND {self.json_text(element)} IN UNNEST({bindings.add(list(texts))}))"
        )

    def in_list(self, bindings: Bindings, expression: str, values: Sequence[object]) -> str:
        return f"{expression} IN UNNEST({bindings.add(list(values))})"

    def contains(self, text: str, value: str) -> str:
        return f"(STRPOS({text}, {value}) > 0)"

    def starts_with(self, text: str, value: str) -> str:
        return f"STARTS_WITH({text}, {value})"

    def ends_with(self, text: str, value: str) -> str:
        return f"ENDS_WITH({text}, {value})"


BIGQUERY = BigQueryDialect()


def _type_of(value: object) -> str:
    return next(kind for py, kind in _PARAM_TYPES if isinstance(value, py))


def query_parameter(
    name: str, value: object
) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    """A typed BigQuery query parameter of a Python value (a list: an ARRAY of its type)."""
    from google.cloud import bigquery

    if isinstance(value, list):
        return bigquery.ArrayQueryParameter(name, _type_of(value[0]), value)
    return bigquery.ScalarQueryParameter(name, _type_of(value), value)
