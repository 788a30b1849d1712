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
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
READ_FACTOR = 32
"""A condition whose index row groups hold more than READ_FACTOR * cap rows is not used."""
_LOOKUP_COLUMNS = ("file", "row", "ts", "col", "ptr", "kind", "str", "num")

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


@dataclass(frozen=True)
class Branch:
    """One conjunction over the index (`sql`), and what it needs of the values, for skipping
    row groups by their statistics: the key, the kind, and a range of `str` or `num`."""

    sql: str
    column: str
    pointer: str
    kind: str
    value_column: str | None = None  # "str" or "num"
    low: object = None  # None: unbounded
    high: object = None
    options: frozenset[object] = frozenset()  # the values of an IN list


def condition_branches(condition: JsonCondition, params: dict[str, object]) -> list[Branch] | None:
    """Conjunctions over the index whose union holds every row the condition matches; their
    values are added to `params`. None when the index cannot answer the operator."""
    op, values = condition.operator, condition.values
    if op not in _INDEXED_OPERATORS or condition.column not in JSON_COLUMNS:
        return None

    def bind(value: object) -> str:
        name = f"p{len(params)}"
        params[name] = value
        return "$" + name

    base = f"col = {bind(condition.column)} AND ptr = {bind(condition.pointer)}"
    branches: list[Branch] = []

    def add(
        kind: str,
        sql: str,
        value_column: str | None = None,
        low: object = None,
        high: object = None,
        options: frozenset[object] = frozenset(),
    ) -> None:
        where = f"{base} AND kind = '{kind}' AND {sql}"
        key = (condition.column, condition.pointer, kind)
        branches.append(Branch(where, *key, value_column, low, high, options))

    def one_of(kind: str, column: str, options: list) -> None:
        if options:
            sql = f"{column} IN {bind(options)}"
            add(kind, sql, column, min(options), max(options), frozenset(options))

    lower = op in ("is greater than", "is greater than or equal to")
    if op in ("is", "is one of"):
        one_of("s", "str", list(values))
        one_of("n", "num", [n for n in map(_number, values) if n is not None])
        one_of("b", "str", [v for v in values if v in ("true", "false")])
    elif op in ("is true", "is false"):
        one_of("b", "str", [op.removeprefix("is ")])
    elif op in COMPARISONS:
        for kind, column, value in (("s", "str", values[0]), ("n", "num", _number(values[0]))):
            if value is not None:
                bounds = (value, None) if lower else (None, value)
                add(kind, f"{column} {COMPARISONS[op]} {bind(value)}", column, *bounds)
    elif op == "is between":
        low_n, high_n = _number(values[0]), _number(values[1])
        for kind, column, low, high in (
            ("s", "str", values[0], values[1]),
            ("n", "num", low_n, high_n),
        ):
            if low is not None and high is not None:
                add(kind, f"{column} BETWEEN {bind(low)} AND {bind(high)}", column, low, high)
    elif op in DATE_COMPARISONS:
        moment = bind(parse_datetime(values[0]))
        add("s", f"TRY_CAST(str AS TIMESTAMPTZ) {DATE_COMPARISONS[op]} {moment}")
    elif op == "starts with":
        prefix = bind(values[0])
        add("s", f"starts_with(str, {prefix})", "str", values[0], None)
    elif op == "contains":
        add("s", f"contains(str, {bind(values[0])})")
    else:  # ends with
        add("s", f"suffix(str, {bind(values[0])})")
    return branches


def _group_stats(metadata: pq.FileMetaData) -> list[dict[str, tuple[object, ...] | None]]:
    """Per row group of an index file: {column: (min, max, null count)}, None where not
    known."""
    names = metadata.schema.names
    groups = []
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        stats: dict[str, tuple[object, ...] | None] = {}
        for j, name in enumerate(names):
            found = group.column(j).statistics
            known = found is not None and found.has_min_max and found.has_null_count
            stats[name] = (found.min, found.max, found.null_count) if known else None
        groups.append(stats)
    return groups


def _may_hold(stats: dict[str, tuple[object, ...] | None], branch: Branch) -> bool:
    """Whether a row group with these statistics may hold rows of `branch`."""
    checks = [
        ("col", branch.column, branch.column),
        ("ptr", branch.pointer, branch.pointer),
        ("kind", branch.kind, branch.kind),
    ]
    if branch.value_column is not None:
        checks.append((branch.value_column, branch.low, branch.high))
    for column, low, high in checks:
        bounds = stats.get(column)
        if bounds is None or bounds[0] is None or bounds[1] is None:
            continue
        if (low is not None and bounds[1] < low) or (high is not None and bounds[0] > high):
            return False
    return True


@dataclass(frozen=True)
class _IndexFile:
    """An index file's footer: manifest, Parquet metadata, row-group statistics, and the
    row groups of each (col, ptr, kind) key; `spanning` row groups hold several keys."""

    manifest: Manifest
    metadata: pq.FileMetaData
    groups: list[dict[str, tuple[object, ...] | None]]
    by_key: dict[tuple[object, object, object], list[int]]
    spanning: list[int]

    @classmethod
    def of(cls, manifest: Manifest, metadata: pq.FileMetaData) -> _IndexFile:
        groups = _group_stats(metadata)
        by_key: dict[tuple[object, object, object], list[int]] = {}
        spanning: list[int] = []
        for i, stats in enumerate(groups):
            bounds = [stats.get(c) for c in ("col", "ptr", "kind")]
            if all(b is not None and b[0] == b[1] for b in bounds):
                by_key.setdefault(tuple(b[0] for b in bounds), []).append(i)  # type: ignore[index]
            else:
                spanning.append(i)
        return cls(manifest, metadata, groups, by_key, spanning)

    def row_groups(self, branches: list[Branch]) -> tuple[list[int], int]:
        """The row groups that may hold rows of any of `branches`, and how many rows they
        surely hold (row groups of one key whose values are all one of an IN list)."""
        found: set[int] = set()
        sure = 0
        for branch in branches:
            key = (branch.column, branch.pointer, branch.kind)
            for i in self.by_key.get(key, ()):
                bounds = self.groups[i].get(branch.value_column or "")
                if (
                    bounds
                    and bounds[0] == bounds[1]
                    and bounds[2] == 0
                    and (bounds[0] in branch.options)
                ):
                    sure += self.metadata.row_group(i).num_rows
            for i in (*self.by_key.get(key, ()), *self.spanning):
                if i not in found and _may_hold(self.groups[i], branch):
                    found.add(i)
        return sorted(found), sure


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
        self._indexes: dict[str, _IndexFile | None] = {}  # by index file (names are unique)
        self._row_stores: dict[str, tuple[str, pa.RecordBatchFileReader]] = {}  # by folder
        self._lock = threading.Lock()

    def current(self, partition_name: str, files: tuple[str, ...]) -> IndexedPartition | None:
        """The partition's index when it was built from exactly `files` as they are now."""
        found = index_files(index_dir(self.lake, partition_name))
        if not found:
            return None
        index = self._index_file(found[0])
        try:
            current = tuple(FileSignature.of(f) for f in files)
        except FileNotFoundError:
            return None
        if index is None or index.manifest.files != current:
            return None
        return IndexedPartition(found[0], files, index.manifest.file_rows, index.manifest.row_store)

    def _index_file(self, path: str) -> _IndexFile | None:
        """The footer of an index file: its manifest and row-group statistics (cached)."""
        with self._lock:
            if path in self._indexes:
                return self._indexes[path]
        try:
            metadata = pq.read_metadata(path)
        except OSError:
            return None
        manifest = read_manifest(path, metadata)
        index = _IndexFile.of(manifest, metadata) if manifest else None
        with self._lock:
            if len(self._indexes) > 10_000:
                self._indexes.clear()
            self._indexes[path] = index
        return index

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

    def lookup(
        self,
        cursor: duckdb.DuckDBPyConnection,
        partitions: list[IndexedPartition],
        conditions: tuple[JsonCondition, ...],
        cap: int = CANDIDATE_CAP,
    ) -> list[Candidate] | None:
        """The candidate rows of `partitions` for `conditions`, or None when no condition
        can use the index within `cap` rows.

        Row groups are chosen by their statistics (kept in memory) and read with pyarrow;
        the branches' SQL is then applied to their rows. A condition whose row groups hold
        more than READ_FACTOR * cap rows is not used (it would match too many).
        """
        found: set[Candidate] | None = None
        for condition in conditions:
            params: dict[str, object] = {}
            branches = condition_branches(condition, params)
            if branches is None:
                continue
            rows = self._lookup_branches(cursor, partitions, branches, params, cap)
            if rows is None:
                continue
            found = rows if found is None else found & rows
        return None if found is None else sorted(found)

    def _lookup_branches(
        self,
        cursor: duckdb.DuckDBPyConnection,
        partitions: list[IndexedPartition],
        branches: list[Branch],
        params: dict[str, object],
        cap: int,
    ) -> set[Candidate] | None:
        """The rows of the union of `branches`, or None when there are more than `cap`."""
        chosen: list[tuple[int, IndexedPartition, _IndexFile, list[int]]] = []
        surely_found = 0
        for position, partition in enumerate(partitions):
            index = self._index_file(partition.index_file)
            if index is None:  # pragma: no cover - current() read it
                return None
            groups, sure = index.row_groups(branches)
            surely_found += sure
            if groups:
                chosen.append((position, partition, index, groups))
        held = sum(ix.metadata.row_group(i).num_rows for _, _, ix, groups in chosen for i in groups)
        if surely_found > cap or held > READ_FACTOR * cap:
            return None
        pieces: list[pa.Table] = []
        for position, partition, index, groups in chosen:
            parquet = pq.ParquetFile(partition.index_file, metadata=index.metadata)
            table = parquet.read_row_groups(groups, columns=list(_LOOKUP_COLUMNS))
            part = pa.array(np.full(table.num_rows, position, np.int32))
            pieces.append(table.append_column("part", part))
        if not pieces:
            return set()
        name = f"index_rows_{threading.get_ident()}"
        cursor.register(name, pa.concat_tables(pieces))
        try:
            selects = [f"SELECT part, file, row, ts FROM {name} WHERE {b.sql}" for b in branches]
            # UNION ALL streams (a row found twice is one candidate): LIMIT stops early.
            sql = f"SELECT * FROM ({' UNION ALL '.join(selects)}) LIMIT {cap + 1}"
            rows = cursor.execute(sql, params).fetchall()
        finally:
            cursor.unregister(name)
        if len(rows) > cap:
            return None
        return {(partitions[part].files[file], row, ts) for part, file, row, ts in rows}


Candidate = tuple[str, int, int]
"""A candidate row: (event file, row number, timestamp in microseconds)."""


def by_file(candidates: list[Candidate]) -> dict[str, list[int]]:
    """{event file: its candidate row numbers, ascending}."""
    rows: dict[str, list[int]] = {}
    for path, row, _ in sorted(candidates):
        rows.setdefault(path, []).append(row)
    return rows
