"""A validated list-events request, its workspace restriction, and the SQL ordering and
empty page every backend of the lake shares."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pyarrow as pa

from eventpipe.query.duckdb_dialect import quote_identifier
from eventpipe.query.sql import Dialect, Predicate
from eventpipe.schemas import TOP_LEVEL_COLUMNS, arrow_schema


@dataclass(frozen=True)
class Seek:
    """Where a keyset page starts, in timestamp order: just after the row whose key
    (`timestamp`, `messageId`, `connectionId`) this is, in the query's direction; without
    `message_id`, at `timestamp` itself (every row at it or beyond it).

    The key is a total order that no job changes: compaction and reprocessing keep every
    event's timestamp, messageId and connectionId, and (connectionId, messageId) is unique.
    """

    timestamp: dt.datetime
    message_id: str | None = None
    connection_id: int | None = None

    def __post_init__(self) -> None:
        if (self.message_id is None) != (self.connection_id is None):
            raise ValueError("a seek key has both messageId and connectionId, or neither")


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
    seek: Seek | None = None
    """A keyset start (order `timestamp` only): the page begins after it, with ties on
    (timestamp, messageId) broken by connectionId (so keyset paging starts its first page
    with a seek too, e.g. `Seek(start)`); `first` still skips rows from there."""

    def __post_init__(self) -> None:
        if self.seek is not None and self.order != "timestamp":
            raise ValueError("a seek needs the timestamp order")


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


def epoch_microseconds(value: dt.datetime) -> int:
    """An aware datetime as integer microseconds since the epoch, exactly."""
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


SEEK_COLUMNS = frozenset({"timestamp", "messageId", "connectionId"})


def seek_condition(seek: Seek, ascending: bool, dialect: Dialect) -> tuple[str, dict[str, object]]:
    """The rows at or after `seek` in the order (`timestamp`, `messageId`, `connectionId`)
    ascending or descending, as SQL of `dialect` over alias `t` and its parameters. A plain
    bound on timestamp comes first: it is what prunes files, row groups and partitions."""
    more = ">" if ascending else "<"
    ts, message, connection = (
        dialect.column((c,)) for c in ("timestamp", "messageId", "connectionId")
    )
    bound = f"{ts} {more}= {dialect.placeholder('seek_ts')}"
    params: dict[str, object] = {"seek_ts": seek.timestamp}
    if seek.message_id is None:
        return bound, params
    p_ts, p_msg, p_conn = (dialect.placeholder(n) for n in ("seek_ts", "seek_msg", "seek_conn"))
    after = (
        f"{ts} {more} {p_ts} OR {message} {more} {p_msg}"
        f" OR ({message} = {p_msg} AND {connection} {more} {p_conn})"
    )
    params.update(seek_msg=seek.message_id, seek_conn=int(seek.connection_id or 0))
    return f"{bound} AND ({after})", params


def seek_predicate(query: EventQuery, dialect: Dialect) -> Predicate | None:
    """The query's predicate AND its seek condition (the predicate alone without a seek).
    The filter is parenthesised, so no `or` of it can reach past the seek."""
    predicate, seek = query.predicate, query.seek
    if seek is None:
        return predicate
    condition, params = seek_condition(seek, query.ascending, dialect)
    if predicate is None:
        return Predicate(condition, params, dialect.name, columns=SEEK_COLUMNS)
    return replace(
        predicate,
        sql=f"{condition} AND ({predicate.sql})",
        params={**predicate.params, **params},
        columns=predicate.columns | SEEK_COLUMNS,
    )


def order_sql(order: str, ascending: bool, by_connection: bool = False) -> str:
    """ORDER BY terms: the order column (nulls last), then messageId (then connectionId, for
    a seek: its key's order), then the row's place in the lake, so that the order is total
    even if a messageId were stored twice."""
    direction = "ASC" if ascending else "DESC"
    tie = "" if order == "messageId" else f', t."messageId" {direction}'
    if by_connection:
        tie += f', t."connectionId" {direction}'
    place = f", t.filename {direction}, t.file_row_number {direction}"
    return f"t.{quote_identifier(order)} {direction} NULLS LAST{tie}{place}"


def empty_page(columns: Sequence[str]) -> pa.Table:
    """A page without rows, with the schema of `columns`."""
    schema = arrow_schema()
    return pa.Table.from_pylist([], schema=pa.schema([schema.field(c) for c in columns]))
