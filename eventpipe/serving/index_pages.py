"""Pages of json-filtered requests read through the serving index, when every partition
in range has a current one.

The candidates of the filter's indexed conditions (`IndexCatalog`: json paths, `userId`,
`anonymousId`, `context.session.id`) come per partition in
newest-first order, and partitions are visited newest first (oldest first, and each
partition's candidates backwards, when ascending), so the candidates form one sequence in
the requested order by timestamp. A prefix of it (`first + limit` candidates, a quarter
more and 16, extended over rows tied on timestamp) is read from the row stores and the
whole filter applied to it with the SQL of the Parquet path; when it holds fewer than
`first + limit` matches and more candidates remain, a prefix 4 times longer is read
(unless the matches found so far say that the page needs more than `budget` rows). So a
frequent value reads a few blocks of its newest rows, and a rare one its few rows wherever
they are. Ordered otherwise, every candidate is read. A request that would read more than
`budget` rows is left to the scans (None).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from dataclasses import replace

import duckdb
import numpy as np
import pyarrow as pa

from eventpipe.query.duckdb_dialect import table_source
from eventpipe.serving.event_query import (
    EventQuery,
    Seek,
    empty_page,
    epoch_microseconds,
    order_sql,
)
from eventpipe.serving.index_lookup import (
    ROW_SCHEMA,
    IndexCatalog,
    IndexedPartition,
    PartitionIndex,
)
from eventpipe.serving.row_store import unsliced

Run = tuple[PartitionIndex, IndexedPartition, np.ndarray]
"""One partition's candidates, in the requested order."""


def tied_prefix(ts: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """The first `count` of `rows` (ordered by their timestamps `ts[rows]`), and every
    following row tied with the last of them."""
    if count >= len(rows):
        return rows
    last = ts[rows[count - 1]]
    window = 64  # ties are few: look at the rows after the prefix a window at a time
    while count < len(rows):
        rest = ts[rows[count : count + window]] != last
        if rest.any():
            return rows[: count + int(np.argmax(rest))]
        count, window = count + len(rest), window * 4
    return rows


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


def filter_rows(cursor: duckdb.DuckDBPyConnection, rows: pa.Table, query: EventQuery) -> pa.Table:
    """The page of `query` among `rows` (`read_runs`): its filter applied again, sorted,
    offset and limited by DuckDB over the columns they need, then taken from `rows`."""
    predicate = query.predicate
    needed = {query.order, "messageId", "filename", "file_row_number"}
    needed |= predicate.columns if predicate else set()
    narrow = rows.select([c for c in rows.column_names if c in needed])
    if any(pa.types.is_struct(f.type) for f in narrow.schema):
        narrow = unsliced(narrow)  # DuckDB refuses sliced struct columns
    narrow = narrow.append_column("_position", pa.array(np.arange(rows.num_rows)))
    where = f" WHERE ({predicate.sql})" if predicate else ""
    params = dict(predicate.params) if predicate else {}
    params.update(limit=query.limit, offset=query.first)
    name = f"candidates_{threading.get_ident()}"
    cursor.register(name, narrow)
    try:
        found = cursor.execute(
            f"SELECT _position FROM {table_source(name, predicate)}{where}"
            f" ORDER BY {order_sql(query.order, query.ascending, query.seek is not None)}"
            " LIMIT $limit OFFSET $offset",
            params,
        ).fetchnumpy()["_position"]
    finally:
        cursor.unregister(name)
    return rows.select(list(query.columns)).take(pa.array(np.asarray(found, np.int64)))


def read_runs(chunk: list[Run]) -> pa.Table:
    """The rows of `chunk` from the row stores (zero-copy slices of their blocks), with
    `filename` and `file_row_number`."""
    batches: list[pa.RecordBatch] = []
    names, numbers = [], []
    for index, partition, rows in chunk:
        found, file_names, row_numbers = index.read(np.sort(rows), partition.files)
        batches += found
        names.append(file_names)
        numbers.append(row_numbers)
    table = pa.Table.from_batches(batches, schema=ROW_SCHEMA)
    table = table.append_column(
        "filename", pa.chunked_array([pa.array(np.concatenate(names), pa.string())])
    )
    return table.append_column("file_row_number", pa.chunked_array([np.concatenate(numbers)]))


def page_from_index(
    catalog: IndexCatalog,
    cursor: duckdb.DuckDBPyConnection,
    partitions: list[IndexedPartition],
    query: EventQuery,
    budget: int,
) -> pa.Table | None:
    """The page of `query` (whose filter has indexed conditions) over indexed `partitions`
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
        page = filter_rows(cursor, read_runs(chunk), query)
        # A full page: the chunk holds `first + limit` matches, the first of all.
        if page.num_rows == query.limit or (exhausted and size == total):
            return page
        matched = page.num_rows + query.first if page.num_rows else 0
        if matched * budget < wanted * size:  # at this rate, more than `budget` rows to read
            return None
        take *= 4


def tie_bounds(ts: np.ndarray, low: int, high: int) -> tuple[int, int]:
    """[low, high) of rows ordered by `ts` (descending), widened to every row tied with
    its ends."""

    def negated(value: np.int64) -> int:
        return -int(value)

    start = bisect.bisect_left(ts, -int(ts[low]), 0, low + 1, key=negated)
    stop = bisect.bisect_right(ts, -int(ts[high - 1]), high - 1, len(ts), key=negated)
    return start, stop


def page_by_position(
    catalog: IndexCatalog,
    cursor: duckdb.DuckDBPyConnection,
    partitions: list[IndexedPartition],
    query: EventQuery,
) -> pa.Table:
    """The page of an unfiltered `query` ordered by timestamp over indexed `partitions`
    (oldest first): the partitions the offset passes are skipped by their row counts, and
    the page's rows are found by position in the row order of the others (rows tied on
    timestamp with either end are read too, and the page sorted among them)."""
    ordered = partitions if query.ascending else partitions[::-1]
    skip, need = query.first, query.limit
    chunk: list[Run] = []
    before = 0  # rows read ahead of the page (tied with its first row)
    for partition in ordered:
        if need <= 0:
            break
        index = catalog.open(partition)
        count = index.row_count
        if skip >= count:
            skip -= count
            continue
        low, high = skip, min(count, skip + need)
        if query.ascending:
            low, high = count - high, count - low
        start, stop = tie_bounds(index.order.ts, low, high)
        if not chunk:
            before = stop - high if query.ascending else low - start
        chunk.append((index, partition, np.arange(start, stop)))
        need -= high - low
        skip = 0
    if not chunk:
        return empty_page(query.columns)
    return filter_rows(cursor, read_runs(chunk), replace(query, predicate=None, first=before))


def seek_range(ts: np.ndarray, seek: Seek, ascending: bool) -> tuple[int, int]:
    """The positions [low, high) of the row order (timestamps `ts`, descending) at or beyond
    the seek's timestamp in the query's direction, every row tied with it included (the
    seek condition, applied again to the rows read, leaves out those before its key)."""
    stamp = int(epoch_microseconds(seek.timestamp))

    def negated(value: np.int64) -> int:
        return -int(value)

    if ascending:  # timestamps >= the seek's: the first rows (newest first)
        return 0, bisect.bisect_right(ts, -stamp, key=negated)
    return bisect.bisect_left(ts, -stamp, key=negated), len(ts)


def _runs(
    catalog: IndexCatalog,
    cursor: duckdb.DuckDBPyConnection,
    partitions: list[IndexedPartition],
    query: EventQuery,
) -> Iterator[tuple[PartitionIndex, IndexedPartition, np.ndarray | None]]:
    """Each partition's candidates in the requested order (None when the index answers
    none of the conditions; every row when there are none), from the query's seek on,
    computed as they are needed."""
    conditions = query.predicate.indexed_conditions if query.predicate else ()
    for partition in partitions:
        index = catalog.open(partition)
        low, high = 0, index.row_count
        if query.seek is not None:
            low, high = seek_range(index.order.ts, query.seek, query.ascending)
        if conditions:
            rows = index.candidates(cursor, conditions)
            if rows is not None and (low, high) != (0, index.row_count):
                rows = rows[np.searchsorted(rows, low) : np.searchsorted(rows, high)]
        else:
            rows = np.arange(low, high, dtype=np.int32)
        yield index, partition, rows[::-1] if rows is not None and query.ascending else rows
