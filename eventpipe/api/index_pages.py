"""Pages of json-filtered requests read through the serving index, when every partition
in range has a current one.

The candidates of the filter's json conditions (`IndexCatalog`) come per partition in
newest-first order, and partitions are visited newest first (oldest first, and each
partition's candidates backwards, when ascending), so the candidates form one sequence in
the requested order by timestamp. A prefix of it (`first + limit` candidates, a quarter
more and 16, extended over rows tied on timestamp) is read from the row stores and the
whole filter applied to it with the SQL of the Parquet path; when it holds fewer than
`first + limit` matches and more candidates remain, a prefix 4 times longer is read. So a
frequent value reads a few blocks of its newest rows, and a rare one its few rows wherever
they are. Ordered otherwise, every candidate is read. A request that would read more than
`budget` rows is left to the scans (None).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa

from eventpipe.api.event_query import EventQuery, empty_page, order_sql
from eventpipe.api.filters import quote_identifier
from eventpipe.api.index_lookup import IndexCatalog, IndexedPartition, PartitionIndex

Run = tuple[PartitionIndex, IndexedPartition, np.ndarray]
"""One partition's candidates, in the requested order."""


def tied_prefix(ts: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """The first `count` of `rows` (ordered by their timestamps `ts[rows]`), and every
    following row tied with the last of them."""
    if count >= len(rows):
        return rows
    rest = ts[rows[count:]] != ts[rows[count - 1]]
    return rows[: count + (int(np.argmax(rest)) if rest.any() else len(rest))]


def prefix(runs: list[Run], count: int) -> list[Run]:
    """The first `count` candidates of `runs` (with ties)."""
    chosen: list[Run] = []
    for index, partition, rows in runs:
        if count <= 0:
            break
        part = tied_prefix(index.order.ts, rows, count)
        chosen.append((index, partition, part))
        count -= len(part)
    return chosen


def filter_rows(
    cursor: duckdb.DuckDBPyConnection, rows: pa.Table, query: EventQuery
) -> tuple[pa.Table, int]:
    """(the page of `query` among `rows`, how many of them match its filter)."""
    predicate = query.predicate
    where = f" WHERE ({predicate.sql})" if predicate else ""
    params = dict(predicate.params) if predicate else {}
    name = f"candidates_{threading.get_ident()}"
    cursor.register(name, rows)
    try:
        count = int(
            cursor.execute(f"SELECT count(*) FROM {name} AS t{where}", params).fetchall()[0][0]
        )
        params.update(limit=query.limit, offset=query.first)
        columns = ", ".join("t." + quote_identifier(c) for c in query.columns)
        page = cursor.sql(
            f"SELECT {columns} FROM {name} AS t{where}"
            f" ORDER BY {order_sql(query.order, query.ascending)} LIMIT $limit OFFSET $offset",
            params=params,
        ).to_arrow_table()
    finally:
        cursor.unregister(name)
    return page, count


def page_from_index(
    catalog: IndexCatalog,
    cursor: duckdb.DuckDBPyConnection,
    partitions: list[IndexedPartition],
    query: EventQuery,
    budget: int,
) -> pa.Table | None:
    """The page of `query` (whose filter has json conditions) over indexed `partitions`
    (oldest first), or None when it would read more than `budget` rows or the index
    answers none of the conditions."""
    by_time = query.order == "timestamp"
    ordered = partitions if query.ascending or not by_time else partitions[::-1]
    runs = _runs(catalog, cursor, ordered, query)
    loaded: list[Run] = []
    total, exhausted = 0, False
    wanted = query.first + query.limit
    take = wanted + wanted // 4 + 16 if by_time else budget + 1
    while True:
        while total < take and not exhausted:
            run = next(runs, None)
            if run is None:
                exhausted = True
            elif run[2] is None:
                return None  # the index answers none of the conditions
            elif len(run[2]):
                loaded.append((run[0], run[1], run[2]))
                total += len(run[2])
        chunk = prefix(loaded, take)
        size = sum(len(rows) for _, _, rows in chunk)
        if size > budget:
            return None
        if size == 0:
            return empty_page(query.columns)
        tables = [index.read(np.sort(rows), p.files) for index, p, rows in chunk]
        page, matches = filter_rows(cursor, pa.concat_tables(tables), query)
        if matches >= wanted or (exhausted and size == total):
            return page
        take *= 4


def _runs(
    catalog: IndexCatalog,
    cursor: duckdb.DuckDBPyConnection,
    partitions: list[IndexedPartition],
    query: EventQuery,
) -> Iterator[tuple[PartitionIndex, IndexedPartition, np.ndarray | None]]:
    """Each partition's candidates in the requested order (None when the index answers
    none of the conditions), computed as they are needed."""
    conditions = query.predicate.json_conditions if query.predicate else ()
    for partition in partitions:
        index = catalog.open(partition)
        rows = index.candidates(cursor, conditions)
        yield index, partition, rows[::-1] if rows is not None and query.ascending else rows
