"""Deduplication: events are unique by (connectionId, messageId).

Which copy survives (deterministic, whatever the order the runner delivers in):
1. a copy the lake already holds (an earlier run's) wins over every new one;
2. among new copies, the one received first (`receivedAt`), then the one that
   comes first in the input (source file name, line, position in the record).

Scope: the whole run, and the lake's partitions the run writes to (`date` of the
event's timestamp). A re-sent event normally lands in the partition of its first
copy (the timestamp is the client's corrected time); a copy whose timestamp moved
to another day than a stored copy's is not compared with it.

Memory stays bounded because only keys travel: each writer buffer drops its own
duplicates (`first_copies`: most copies are near each other, like client retries),
then sends the keys of what it staged (KEY_SCHEMA, ~150 bytes an event), split
into `buckets` by a hash of the key; one bucket's keys are compared at a time, and
the verdict is a list of (staged file, row) to drop.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.schemas.records import ARCHIVE_COLUMN

NAME = pa.dictionary(pa.int32(), pa.string())  # few distinct values: 4 bytes a row to shuffle
KEY_SCHEMA = pa.schema(
    [
        pa.field("connectionId", pa.int32()),
        pa.field("messageId", pa.string()),
        pa.field("existing", pa.bool_()),  # held by the lake before this run
        pa.field("receivedAt", pa.timestamp("us", tz="UTC")),
        pa.field("source", NAME),
        pa.field("line", pa.int64()),
        pa.field("index", pa.int32()),
        pa.field("file", NAME),  # the staged file (`date=D/name`), null when existing
        pa.field("row", pa.int32()),
    ]
)


def event_keys(
    events: pa.Table, files: pa.Array | None = None, rows: pa.Array | None = None
) -> pa.Table:
    """The keys of event rows (events with the archive column), in row order.

    `files`/`rows` say where each row is staged (default: null file, row = position);
    `files` is dictionary-encoded (NAME).
    The columns are compact copies: `events` is often a slice of a bigger table, and a
    pickled slice would carry the whole table's buffers to the shuffle.
    """
    archive = events[ARCHIVE_COLUMN]
    n = events.num_rows
    positions = pa.array(np.arange(n, dtype=np.int32))
    keys = pa.Table.from_arrays(
        [
            events["connectionId"],
            events["messageId"],
            pa.array(np.zeros(n, dtype=bool)),
            events["receivedAt"],
            pc.dictionary_encode(pc.struct_field(archive, "source")),
            pc.struct_field(archive, "line"),
            pc.struct_field(archive, "index"),
            pa.nulls(n, NAME) if files is None else files,
            positions if rows is None else rows,
        ],
        schema=KEY_SCHEMA,
    )
    return keys.take(positions)


def existing_keys(stored: pa.Table) -> pa.Table:
    """Keys of rows the lake holds (columns connectionId, messageId)."""
    n = stored.num_rows
    columns = {
        "connectionId": stored["connectionId"],
        "messageId": stored["messageId"],
        "existing": pa.array([True] * n),
    }
    return pa.Table.from_arrays(
        [columns.get(f.name, pa.nulls(n, f.type)) for f in KEY_SCHEMA], schema=KEY_SCHEMA
    )


_FIRST_COPIES = """
    SELECT (hash(connectionId, messageId) % {buckets})::INTEGER AS bucket,
           row_number() OVER (
               PARTITION BY connectionId, messageId
               ORDER BY receivedAt, source, line, "index", "row") = 1 AS first
    FROM dedupe_keys ORDER BY "row"
"""


def first_copies(
    con: duckdb.DuckDBPyConnection, keys: pa.Table, buckets: int
) -> tuple[np.ndarray, np.ndarray]:
    """For keys of new events (`row` = position): whether each row is the first copy of
    its key among these rows (by the survivor rule), and its bucket."""
    found = _query(con, keys, _FIRST_COPIES.format(buckets=int(buckets)))
    return found["first"].to_numpy(), found["bucket"].to_numpy()


def drop_own_copies(
    con: duckdb.DuckDBPyConnection, events: pa.Table, sort_by: str, buckets: int
) -> tuple[pa.Table, np.ndarray, int]:
    """`events` (with the archive column) without their own duplicates (the first copy by the
    survivor rule stays), sorted by `sort_by`, in one copy of the rows; returns (those rows,
    the bucket of each, how many copies were dropped)."""
    first, bucket = first_copies(con, event_keys(events), buckets)
    order = pc.sort_indices(events[sort_by]).to_numpy()
    order = order[first[order]]
    return events.take(order), bucket[order], int(len(first) - first.sum())


def by_bucket(keys: pa.Table, bucket: np.ndarray) -> Iterator[tuple[int, pa.Table]]:
    """(bucket, its keys, compacted) for each bucket present in `bucket` (one per key row)."""
    order = np.argsort(bucket, kind="stable")
    ordered = bucket[order]
    bounds = np.flatnonzero(np.diff(ordered)) + 1
    for chunk in np.split(order, bounds):
        if len(chunk):
            yield int(bucket[chunk[0]]), keys.take(pa.array(chunk))


def split_by_bucket(
    con: duckdb.DuckDBPyConnection, keys: pa.Table, buckets: int
) -> Iterator[tuple[int, pa.Table]]:
    """(bucket, keys of that bucket) for each bucket the keys fall in.

    The bucket is DuckDB's `hash` of the key: deterministic across processes.
    """
    sql = f"SELECT (hash(connectionId, messageId) % {int(buckets)})::INTEGER AS bucket FROM dedupe_keys"
    yield from by_bucket(keys, _query(con, keys, sql)["bucket"].to_numpy())


_DUPLICATES = """
    SELECT file, list("row" ORDER BY "row") AS rows FROM (
      SELECT file, "row", row_number() OVER (
          PARTITION BY connectionId, messageId
          ORDER BY existing DESC, receivedAt, source, line, "index", file, "row") AS copy
      FROM dedupe_keys)
    WHERE copy > 1 AND file IS NOT NULL
    GROUP BY file ORDER BY file
"""


def duplicate_rows(con: duckdb.DuckDBPyConnection, keys: pa.Table) -> list[tuple[str, list[int]]]:
    """For the keys of one bucket: (staged file, its rows that are duplicates), per file."""
    found = _query(con, keys, _DUPLICATES)
    return list(zip(found["file"].to_pylist(), found["rows"].to_pylist(), strict=True))


def _query(con: duckdb.DuckDBPyConnection, keys: pa.Table, sql: str) -> pa.Table:
    con.register("dedupe_keys", keys)
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.unregister("dedupe_keys")
