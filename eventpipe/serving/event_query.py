"""A validated list-events request, its workspace restriction, and the SQL ordering and
empty page every backend of the lake shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pyarrow as pa

from eventpipe.query.duckdb_dialect import quote_identifier
from eventpipe.query.sql import Predicate
from eventpipe.schemas import TOP_LEVEL_COLUMNS, arrow_schema


@dataclass(frozen=True)
class EventQuery:
    """A validated list-events request.

    `connections` are the connection ids the caller may see (its workspace's); every
    reader puts `connectionId IN (...)` into its query plan, and an empty set answers
    nothing. None means the whole lake: only the legacy and no-auth principals have it.
    It has no default, so no caller can forget it.
    """

    connections: frozenset[int] | None = field(kw_only=True)
    columns: tuple[str, ...] = TOP_LEVEL_COLUMNS
    predicate: Predicate | None = None
    order: str = "timestamp"
    ascending: bool = False
    first: int = 0
    limit: int = 100


def connection_condition(connections: frozenset[int], column_sql: str) -> str:
    """`column_sql IN (ids)`: the workspace restriction of every read ("FALSE" for none).

    The ids are the catalog's int32s, written as integer literals (no user text can reach
    them), which also lets the engines prune files and row groups by their statistics.
    """
    if not connections:
        return "FALSE"
    return f"{column_sql} IN ({', '.join(str(int(c)) for c in sorted(connections))})"


def scoped_predicate(query: EventQuery) -> Predicate | None:
    """The query's filter AND its workspace restriction, as one DuckDB predicate over alias
    `t` (the filter alone for the whole lake). The restriction comes first and the filter
    is parenthesised, so no `or` of the filter can reach past it; the filter's date
    bounds and indexed conditions still hold for every row the conjunction matches."""
    predicate, connections = query.predicate, query.connections
    if connections is None:
        return predicate
    condition = connection_condition(connections, 't."connectionId"')
    if predicate is None:
        return Predicate(condition, columns=frozenset({"connectionId"}))
    return replace(
        predicate,
        sql=f"{condition} AND ({predicate.sql})",
        columns=predicate.columns | {"connectionId"},
    )


def order_sql(order: str, ascending: bool) -> str:
    """ORDER BY terms: the order column (nulls last), then messageId, then the row's place
    in the lake, so that the order is total even if a messageId were stored twice."""
    direction = "ASC" if ascending else "DESC"
    tie = "" if order == "messageId" else f', t."messageId" {direction}'
    place = f", t.filename {direction}, t.file_row_number {direction}"
    return f"t.{quote_identifier(order)} {direction} NULLS LAST{tie}{place}"


def empty_page(columns: Sequence[str]) -> pa.Table:
    """A page without rows, with the schema of `columns`."""
    schema = arrow_schema()
    return pa.Table.from_pylist([], schema=pa.schema([schema.field(c) for c in columns]))
