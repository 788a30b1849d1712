"""The read API over a BigQuery event table: the filter language as parameterised BigQuery SQL.

A filter is first validated and bounded by `filters.compile_filter` (same checks, same
400 errors, same date bounds as the lake backend), then compiled again into GoogleSQL
with the same semantics (see `eventpipe.api.filters`): every value and every JSON path
is a query parameter, property names come from the schema only. The date bounds become
a predicate on `timestamp`, which prunes the table's day partitions.

JSON paths use `JSON_QUERY(column, @path)` with a JSONPath built from the keys
(`$."plan"`, a digit segment also as an array index `[0]`), and the JSON type of the
value selects how it compares, as in the lake backend.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import pyarrow as pa

from eventpipe.api import filters
from eventpipe.api.filters import Target, resolve_property, typed_value
from eventpipe.api.query import EventQuery
from eventpipe.schemas import arrow_schema
from eventpipe.serving.conditions import COMPARISONS, DATE_COMPARISONS, parse_datetime, parse_float
from eventpipe.serving.event_query import connection_condition, empty_page
from eventpipe.serving.predicate import Predicate

if TYPE_CHECKING:
    from google.cloud import bigquery

log = logging.getLogger(__name__)

_PARAM_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "BOOL"),  # before int: bool is an int
    (int, "INT64"),
    (float, "FLOAT64"),
    (Decimal, "BIGNUMERIC"),
    (dt.datetime, "TIMESTAMP"),
    (dt.date, "DATE"),
    (str, "STRING"),
)


@dataclass
class BigQueryPredicate(Predicate):
    """A filter compiled to GoogleSQL over table alias `t`, with `@name` parameters."""

    params: dict[str, object] = field(default_factory=dict)


class _Params:
    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def add(self, value: object) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return "@" + name


def column_sql(prop: str) -> str:
    """`t.`a`.`b`` for a schema path (names come from the schema, never from the user)."""
    return "t." + ".".join(f"`{part}`" for part in prop.split("."))


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


def _typed_sql(target: Target, operator: str, values: list[str], params: _Params) -> str:
    col = column_sql(target.property)
    fixed = {
        "is null": f"{col} IS NULL",
        "is not null": f"{col} IS NOT NULL",
        "is true": f"{col} = TRUE",
        "is false": f"{col} = FALSE",
        "is empty": f"{col} = ''",
        "is not empty": f"{col} <> ''",
    }
    if operator in fixed:
        return fixed[operator]
    typed = [params.add(typed_value(target.field, v)) for v in values]
    if operator == "is":
        return f"{col} = {typed[0]}"
    if operator == "is not":
        return f"{col} <> {typed[0]}"
    if operator == "is one of":
        return f"{col} IN ({', '.join(typed)})"
    if operator == "is not one of":
        return f"{col} NOT IN ({', '.join(typed)})"
    if operator in COMPARISONS:
        return f"{col} {COMPARISONS[operator]} {typed[0]}"
    if operator in DATE_COMPARISONS:
        return f"{col} {DATE_COMPARISONS[operator]} {typed[0]}"
    if operator == "is between":
        return f"{col} BETWEEN {typed[0]} AND {typed[1]}"
    if operator == "is not between":
        return f"NOT ({col} BETWEEN {typed[0]} AND {typed[1]})"
    if operator == "contains":
        return f"STRPOS({col}, {typed[0]}) > 0"
    if operator == "does not contain":
        return f"NOT (STRPOS({col}, {typed[0]}) > 0)"
    if operator == "starts with":
        return f"STARTS_WITH({col}, {typed[0]})"
    if operator == "ends with":
        return f"ENDS_WITH({col}, {typed[0]})"
    raise AssertionError(operator)  # pragma: no cover - validated before


def _number(text: str) -> float | None:
    try:
        return parse_float(text)
    except ValueError:
        return None


def _json_sql(target: Target, operator: str, values: list[str], params: _Params) -> str:
    col = column_sql(target.property.split(".")[0])
    if target.json_path:
        found = [f"JSON_QUERY({col}, {params.add(p)})" for p in json_paths(target.json_path)]
        j = found[0] if len(found) == 1 else f"COALESCE({', '.join(found)})"
    else:
        j = col
    # The JSON type decides how a value compares. JSON_TYPE is used only for the types
    # every engine names alike (boolean, null, array, object); numbers are what
    # SAFE.FLOAT64 reads, strings the other scalars JSON_VALUE returns.
    jtype = f"JSON_TYPE({j})"
    text = f"JSON_VALUE({j})"
    number = f"SAFE.FLOAT64({j})"
    is_number = f"{number} IS NOT NULL"
    is_string = f"({text} IS NOT NULL AND {number} IS NULL AND {jtype} <> 'boolean')"
    present = f"({j} IS NOT NULL AND {jtype} <> 'null')"

    def equals_any(options: list[str]) -> str:
        branches = []
        for value in options:
            branches.append(f"({is_string} AND {text} = {params.add(value)})")
            n = _number(value)
            if n is not None:
                branches.append(f"({is_number} AND {number} = {params.add(n)})")
            if value in ("true", "false"):
                branches.append(f"({jtype} = 'boolean' AND LAX_BOOL({j}) = {value.upper()})")
        return "(" + " OR ".join(branches) + ")"

    def compare(op: str, value: str) -> str:
        branches = [f"({is_string} AND {text} {op} {params.add(value)})"]
        n = _number(value)
        if n is not None:
            branches.append(f"({is_number} AND {number} {op} {params.add(n)})")
        return "(" + " OR ".join(branches) + ")"

    def between(negate: bool) -> str:
        low, high = values
        neg = "NOT " if negate else ""
        branches = [
            f"({is_string} AND {neg}({text} BETWEEN {params.add(low)} AND {params.add(high)}))"
        ]
        low_n, high_n = _number(low), _number(high)
        if low_n is not None and high_n is not None:
            branches.append(
                f"({is_number} AND {neg}({number} BETWEEN {params.add(low_n)} "
                f"AND {params.add(high_n)}))"
            )
        return "(" + " OR ".join(branches) + ")"

    array_length = f"CASE WHEN {jtype} = 'array' THEN ARRAY_LENGTH(JSON_QUERY_ARRAY({j})) END"
    key_count = f"CASE WHEN {jtype} = 'object' THEN ARRAY_LENGTH(JSON_KEYS({j}, 1)) END"
    empty = (
        f"(({is_string} AND {text} = '') OR COALESCE({array_length} = 0, FALSE)"
        f" OR COALESCE({key_count} = 0, FALSE))"
    )
    fixed = {
        "exists": f"{j} IS NOT NULL",
        "does not exist": f"{j} IS NULL",
        "is null": f"({j} IS NULL OR {jtype} = 'null')",
        "is not null": present,
        "is true": f"({jtype} = 'boolean' AND LAX_BOOL({j}) = TRUE)",
        "is false": f"({jtype} = 'boolean' AND LAX_BOOL({j}) = FALSE)",
        "is empty": empty,
        "is not empty": f"({present} AND NOT {empty})",
    }
    if operator in fixed:
        return fixed[operator]
    if operator in ("is", "is one of"):
        return equals_any(values)
    if operator in ("is not", "is not one of"):
        return f"({present} AND NOT {equals_any(values)})"
    if operator in COMPARISONS:
        return compare(COMPARISONS[operator], values[0])
    if operator in DATE_COMPARISONS:
        moment = params.add(parse_datetime(values[0]))
        op = DATE_COMPARISONS[operator]
        return f"({is_string} AND SAFE_CAST({text} AS TIMESTAMP) {op} {moment})"
    if operator == "is between":
        return between(negate=False)
    if operator == "is not between":
        return between(negate=True)
    value = params.add(values[0])
    if operator == "contains":
        return f"({is_string} AND STRPOS({text}, {value}) > 0)"
    if operator == "does not contain":
        return f"({is_string} AND NOT (STRPOS({text}, {value}) > 0))"
    if operator == "starts with":
        return f"({is_string} AND STARTS_WITH({text}, {value}))"
    return f"({is_string} AND ENDS_WITH({text}, {value}))"  # ends with


def compile_bigquery_filter(document: object, parameter: str = "filter") -> BigQueryPredicate:
    """The BigQuery predicate of a decoded filter document (FilterError when it is invalid)."""
    checked = filters.compile_filter(document, parameter)  # validation and date bounds
    assert isinstance(document, dict)
    params = _Params()
    parts = []
    for condition in document["conditions"]:
        target = resolve_property(condition["property"])
        operator = condition["operator"]
        values = filters._values(condition.get("values"), operator, parameter)
        if target.kind == "json":
            parts.append(f"({_json_sql(target, operator, values, params)})")
        else:
            parts.append(f"({_typed_sql(target, operator, values, params)})")
    sql = f" {document['logical'].upper()} ".join(parts) if parts else "TRUE"
    return BigQueryPredicate(sql, params.values, checked.min_date, checked.max_date)


def parse_bigquery_filter(text: str | None, parameter: str = "filter") -> BigQueryPredicate | None:
    """The predicate of the `filter` parameter, or None when absent or blank."""
    if filters.parse_filter(text, parameter) is None:  # size, JSON and schema checks
        return None
    assert text is not None
    return compile_bigquery_filter(json.loads(text), parameter)


def query_parameter(name: str, value: object) -> bigquery.ScalarQueryParameter:
    """A typed BigQuery query parameter of a Python value."""
    from google.cloud import bigquery

    kind = next(kind for py, kind in _PARAM_TYPES if isinstance(value, py))
    return bigquery.ScalarQueryParameter(name, kind, value)


def _order_sql(order: str, ascending: bool) -> str:
    direction = "ASC" if ascending else "DESC"
    tie = "" if order == "messageId" else f", t.`messageId` {direction}"
    return f"t.`{order}` {direction} NULLS LAST{tie}"


class BigQueryReader:
    """Answers list-events queries from one BigQuery event table (thread-safe client)."""

    def __init__(self, table: str, endpoint: str | None = None, project: str | None = None):
        from eventpipe.core.bigquery_client import make_client

        if len(table.split(".")) != 3:
            raise ValueError(f"{table!r} is not a table id of the form PROJECT.DATASET.TABLE")
        self.table = table
        self.client = make_client(project or table.split(".")[0], endpoint)

    parse_filter = staticmethod(parse_bigquery_filter)

    def statement(self, query: EventQuery) -> tuple[str, dict[str, object]]:
        """The SQL and parameters of a list-events query."""
        predicate = query.predicate
        where, params = ["TRUE"], {}
        if predicate is not None:
            if not isinstance(predicate, BigQueryPredicate):
                raise TypeError("the BigQuery backend needs filters from parse_bigquery_filter")
            where, params = [f"({predicate.sql})"], dict(predicate.params)
            if predicate.min_date is not None:
                where.append("t.`timestamp` >= @min_day")  # prunes day partitions
                params["min_day"] = dt.datetime.combine(predicate.min_date, dt.time(), dt.UTC)
            if predicate.max_date is not None:
                where.append("t.`timestamp` < @after_max_day")
                end = predicate.max_date + dt.timedelta(days=1)
                params["after_max_day"] = dt.datetime.combine(end, dt.time(), dt.UTC)
        if query.connections is not None:  # the workspace restriction, before the filter
            where.insert(0, connection_condition(query.connections, "t.`connectionId`"))
        columns = ", ".join(f"t.`{c}`" for c in query.columns)
        params.update(limit=query.limit, offset=query.first)
        sql = (
            f"SELECT {columns} FROM `{self.table}` AS t WHERE {' AND '.join(where)}"
            f" ORDER BY {_order_sql(query.order, query.ascending)} LIMIT @limit OFFSET @offset"
        )
        return sql, params

    def list_events(self, query: EventQuery) -> pa.Table:
        """The page of events `query` asks for, typed as the lake's columns."""
        from google.cloud import bigquery

        if query.connections is not None and not query.connections:
            return empty_page(query.columns)  # a workspace without connections
        sql, params = self.statement(query)
        config = bigquery.QueryJobConfig(
            query_parameters=[query_parameter(k, v) for k, v in params.items()]
        )
        rows = self.client.query(sql, job_config=config).to_arrow(create_bqstorage_client=False)
        schema = arrow_schema()
        wanted = pa.schema([schema.field(c).with_nullable(True) for c in query.columns])
        plain = [pa.field(f.name, f.type) for f in rows.schema]  # drops JSON extension metadata
        return rows.cast(pa.schema(plain)).cast(wanted)
