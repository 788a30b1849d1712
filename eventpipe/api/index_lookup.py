"""Serving-index lookups of the read API: the candidate rows of a filter's json conditions.

The index (`eventpipe.io.serving_index`) maps each scalar json value of a partition to
its rows. For a filter whose json conditions must all hold (`and`, or one condition),
each condition the index can answer (`is`, `is one of`, comparisons, `is between`,
string matches, date comparisons, `is true`/`is false`) is looked up in the indexes of
the partitions at hand, and the rows found by every such condition are the candidates:
a superset of the matching rows, which the query then reads with the full filter
applied. A lookup that finds more than `cap` rows is dropped (scanning is then cheaper
than listing the rows), and a partition whose index is missing or was built from other
files than the partition holds now is scanned as if there were no index: results never
depend on the index.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from eventpipe.api.filters import (
    COMPARISONS,
    DATE_COMPARISONS,
    JsonCondition,
    parse_datetime,
    parse_float,
)
from eventpipe.io.serving_index import (
    JSON_COLUMNS,
    ROW_BATCH,
    FileSignature,
    Manifest,
    index_dir,
    index_files,
    read_manifest,
)

CANDIDATE_CAP = 20_000
"""Most candidate rows a lookup may return; a lookup finding more is not used."""

_INDEXED_OPERATORS = frozenset(
    (
        "is",
        "is one of",
        *COMPARISONS,
        *DATE_COMPARISONS,
        "is between",
        "contains",
        "starts with",
        "ends with",
        "is true",
        "is false",
    )
)


def _number(text: str) -> float | None:
    try:
        return parse_float(text)
    except ValueError:
        return None


def condition_branches(condition: JsonCondition, params: dict[str, object]) -> list[str] | None:
    """WHERE clauses over the index (each a conjunction, so that row groups are pruned by
    their statistics) whose union holds every row the condition matches; their values are
    added to `params`. None when the index cannot answer the operator."""
    op, values = condition.operator, condition.values
    if op not in _INDEXED_OPERATORS or condition.column not in JSON_COLUMNS:
        return None

    def bind(value: object) -> str:
        name = f"p{len(params)}"
        params[name] = value
        return "$" + name

    base = f"col = {bind(condition.column)} AND ptr = {bind(condition.pointer)}"
    branches: list[str] = []
    if op in ("is", "is one of"):
        branches.append(f"kind = 's' AND str IN {bind(list(values))}")
        numbers = [n for n in map(_number, values) if n is not None]
        if numbers:
            branches.append(f"kind = 'n' AND num IN {bind(numbers)}")
        booleans = [v for v in values if v in ("true", "false")]
        if booleans:
            branches.append(f"kind = 'b' AND str IN {bind(booleans)}")
    elif op in ("is true", "is false"):
        branches.append(f"kind = 'b' AND str = '{op.removeprefix('is ')}'")
    elif op in COMPARISONS:
        branches.append(f"kind = 's' AND str {COMPARISONS[op]} {bind(values[0])}")
        number = _number(values[0])
        if number is not None:
            branches.append(f"kind = 'n' AND num {COMPARISONS[op]} {bind(number)}")
    elif op == "is between":
        branches.append(f"kind = 's' AND str BETWEEN {bind(values[0])} AND {bind(values[1])}")
        low, high = _number(values[0]), _number(values[1])
        if low is not None and high is not None:
            branches.append(f"kind = 'n' AND num BETWEEN {bind(low)} AND {bind(high)}")
    elif op in DATE_COMPARISONS:
        moment = bind(parse_datetime(values[0]))
        branches.append(
            f"kind = 's' AND TRY_CAST(str AS TIMESTAMPTZ) {DATE_COMPARISONS[op]} {moment}"
        )
    elif op == "starts with":
        prefix = bind(values[0])
        branches.append(f"kind = 's' AND str >= {prefix} AND starts_with(str, {prefix})")
    elif op == "contains":
        branches.append(f"kind = 's' AND contains(str, {bind(values[0])})")
    else:  # ends with
        branches.append(f"kind = 's' AND suffix(str, {bind(values[0])})")
    return [f"{base} AND {branch}" for branch in branches]


@dataclass(frozen=True)
class IndexedPartition:
    """A partition whose index matches its files: the index file, the files (in the
    index's order) with their row counts, and the row store."""

    index_file: str
    files: tuple[str, ...]
    file_rows: tuple[int, ...]
    row_store: str


class IndexCatalog:
    """Finds the current index of each partition (manifests cached by index file)."""

    def __init__(self, lake: Path) -> None:
        self.lake = lake
        self._manifests: dict[str, Manifest | None] = {}
        self._row_stores: dict[str, tuple[str, pa.RecordBatchFileReader]] = {}  # by folder
        self._lock = threading.Lock()

    def current(self, partition_name: str, files: tuple[str, ...]) -> IndexedPartition | None:
        """The partition's index when it was built from exactly `files` as they are now."""
        found = index_files(index_dir(self.lake, partition_name))
        if not found:
            return None
        index_file = found[0]  # index file names are unique: a cached manifest stays true
        with self._lock:
            if index_file not in self._manifests:
                if len(self._manifests) > 10_000:
                    self._manifests.clear()
                self._manifests[index_file] = read_manifest(index_file)
            manifest = self._manifests[index_file]
        try:
            current = tuple(FileSignature.of(f) for f in files)
        except FileNotFoundError:
            return None
        if manifest is None or manifest.files != current:
            return None
        return IndexedPartition(index_file, files, manifest.file_rows, manifest.row_store)

    def read_rows(self, partition: IndexedPartition, rows: dict[str, list[int]]) -> pa.Table | None:
        """The rows {file: row numbers} of an indexed partition, read from its row store,
        with `filename` and `file_row_number` columns added (in file order, then row); None
        when it has none of them."""
        store = self._row_store(partition.row_store)
        slices: list[pa.RecordBatch] = []
        names: list[str] = []
        numbers: list[int] = []
        first_batch = 0
        for path, count in zip(partition.files, partition.file_rows, strict=True):
            for row in rows.get(path, ()):
                # Zero-copy one-row slices: `take` costs ~0.5 ms a batch on this wide schema.
                batch, offset = divmod(row, ROW_BATCH)
                with self._lock:  # one reader per file, shared between requests
                    record_batch = store.get_batch(first_batch + batch)
                slices.append(record_batch.slice(offset, 1))
                names.append(path)
                numbers.append(row)
            first_batch += -(-count // ROW_BATCH)
        if not slices:
            return None
        table = pa.Table.from_batches(slices)
        table = table.append_column("filename", pa.array(names, pa.string()))
        return table.append_column("file_row_number", pa.array(numbers, pa.int64()))

    def _row_store(self, path: str) -> pa.RecordBatchFileReader:
        """The open (memory-mapped) row store at `path`; one per partition folder is kept,
        so a replaced row store is released."""
        folder = os.path.dirname(path)
        with self._lock:
            cached = self._row_stores.get(folder)
            if cached is None or cached[0] != path:
                cached = (path, pa.ipc.open_file(pa.memory_map(path)))
                self._row_stores[folder] = cached
            return cached[1]


Candidate = tuple[str, int, int]
"""A candidate row: (event file, row number, timestamp in microseconds)."""


def by_file(candidates: list[Candidate]) -> dict[str, list[int]]:
    """{event file: its candidate row numbers, ascending}."""
    rows: dict[str, list[int]] = {}
    for path, row, _ in sorted(candidates):
        rows.setdefault(path, []).append(row)
    return rows


def lookup(
    cursor: duckdb.DuckDBPyConnection,
    partitions: list[IndexedPartition],
    conditions: tuple[JsonCondition, ...],
    cap: int = CANDIDATE_CAP,
) -> list[Candidate] | None:
    """The candidate rows of `partitions` for `conditions`, or None when no condition can
    use the index within `cap` rows."""
    if not partitions or not conditions:
        return None
    owner = {p.index_file: p for p in partitions}
    found: set[Candidate] | None = None
    for condition in conditions:
        params: dict[str, object] = {"indexes": list(owner), "cap": cap + 1}
        branches = condition_branches(condition, params)
        if branches is None:
            continue
        selects = [
            f"SELECT filename, file, row, ts FROM read_parquet($indexes, filename = true) WHERE {b}"
            for b in branches
        ]
        # UNION ALL streams (a row found twice is one candidate): LIMIT stops the scan early.
        sql = f"SELECT * FROM ({' UNION ALL '.join(selects)}) LIMIT $cap"
        rows = cursor.execute(sql, params).fetchall()
        if len(rows) > cap:
            continue
        keys = {(owner[f].files[file], row, ts) for f, file, row, ts in rows}
        found = keys if found is None else found & keys
    return None if found is None else sorted(found)
