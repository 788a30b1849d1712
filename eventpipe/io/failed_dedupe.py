"""Failed rows are stored once: a re-run adds no copy of a rejected record the lake holds.

A failed row's identity is (connectionId, source, line, index, reason, md5 of raw):
the same rejected record or event of the same input file, rejected for the same
reason. The raw text is part of it, so a file rewritten in place (a rotating
`today.jsonl`) gives new rows, never a record dropped for a look-alike.

The survivor rule is the events' (`transforms.dedupe`): a copy the lake already
holds wins, then the one received first, then the first in the input. It runs in
the commit step, over the run's staged failed files (a few % of the input) and the
lake's failed rows of the same source files only: the lake's files are read with a
pushed-down `source IN (...)` filter (row groups whose statistics exclude the run's
sources are skipped), and only the key of each row is kept, so a run never holds
the whole failed table.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from eventpipe.io.lake import FAILED, lake_path, write_parquet

KEY_COLUMNS = ["connectionId", "source", "line", "index", "reason", "raw", "receivedAt"]
_KEYS = """
    SELECT md5_number(concat_ws(chr(31), coalesce(connectionId::VARCHAR, ''), source,
               line::VARCHAR, coalesce("index"::VARCHAR, ''), reason, md5(raw))) AS key,
           receivedAt, source, line, "index", reason
    FROM rows
"""
_DUPLICATES = """
    SELECT file, "row", reason FROM (
      SELECT file, "row", reason, row_number() OVER (
          PARTITION BY key
          ORDER BY file IS NOT NULL, receivedAt, source, line, "index", file, "row") AS copy
      FROM keys)
    WHERE copy > 1 AND file IS NOT NULL
"""


def _keys(con: duckdb.DuckDBPyConnection, rows: pa.Table, file: int | None) -> pa.Table:
    con.register("rows", rows)
    try:
        keys = con.sql(_KEYS).to_arrow_table()
    finally:
        con.unregister("rows")
    n = keys.num_rows
    where = pa.nulls(n, pa.int32()) if file is None else pa.array(np.full(n, file, np.int32))
    return keys.append_column("file", where).append_column(
        "row", pa.array(np.arange(n, dtype=np.int32))
    )


def _read(path: str, sources: list[str] | None = None) -> pa.Table:
    with FileSystems.open(path) as handle:
        filters = None if sources is None else [("source", "in", sources)]
        return pq.read_table(handle, columns=KEY_COLUMNS, filters=filters)


def drop_stored_failed(
    con: duckdb.DuckDBPyConnection, lake: str, staged: Iterable[str]
) -> dict[str, int]:
    """Remove from the staged failed files the rows the lake (or an earlier staged row)
    already holds; rewrites or deletes those files. Returns {reason: rows dropped}."""
    staged = sorted(staged)
    keys, sources = [], set()
    for number, path in enumerate(staged):
        rows = _read(path)
        sources.update(rows["source"].unique().to_pylist())
        keys.append(_keys(con, rows, number))
    if not keys:
        return {}
    pattern = lake_path(lake, FAILED, "date=*", "*.parquet")
    for meta in FileSystems.match([pattern])[0].metadata_list:
        stored = _read(meta.path, sorted(sources))
        if stored.num_rows:
            keys.append(_keys(con, stored, None))
    con.register("keys", pa.concat_tables(keys))
    try:
        found = con.sql(_DUPLICATES).to_arrow_table()
    finally:
        con.unregister("keys")
    dropped: dict[str, int] = {}
    for reason in found["reason"].to_pylist():
        dropped[reason] = dropped.get(reason, 0) + 1
    files = found["file"].to_numpy()
    for number in np.unique(files):
        _drop_rows(staged[number], found["row"].to_numpy()[files == number])
    return dropped


def _drop_rows(path: str, rows: np.ndarray) -> None:
    with FileSystems.open(path) as handle:
        table = pq.read_table(handle)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[rows] = False
    FileSystems.delete([path])
    if keep.any():
        write_parquet(table.filter(pa.array(keep)), path, event_table=False)
