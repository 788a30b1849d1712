"""Serving-index lookups of the read API: the candidate rows of a filter's json conditions
(and conditions on `userId`, `anonymousId` and `context.session.id`).

The index (`eventpipe.serving.index_build`) holds, per partition, each scalar json value (and
each value of those string columns) with the sorted numbers of its rows in newest-first
order. For a filter whose indexed conditions must all hold (`and`, or one condition), each condition the index can answer (`is`, `is
one of`, comparisons, `is between`, string matches, date comparisons, `is true`/`is
false`) selects a set of values by binary search (or, for `contains`, `ends with` and the
date operators, by testing the key's distinct values), and their rows are the
condition's candidates; the rows found by every such condition are the filter's
candidates: a superset of the matching rows, which the query then reads with the full
filter applied. A partition whose index is missing or was built from other files than
the partition holds now is scanned as if there were no index: results never depend on
the index.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.query.language import COMPARISONS, DATE_COMPARISONS
from eventpipe.query.tree import IndexedCondition
from eventpipe.query.values import number_or_none, parse_datetime
from eventpipe.schemas import arrow_schema
from eventpipe.serving.index_build import JSON_COLUMNS
from eventpipe.serving.index_format import (
    INDEXED_COLUMNS,
    FileSignature,
    Manifest,
    RowOrder,
    ValueTable,
    index_dir,
    index_files,
    parse_manifest,
    value_key,
)
from eventpipe.serving.row_store import RowStore, nullable

ROW_SCHEMA = nullable(arrow_schema())
"""The schema of rows read from the row stores (as the Parquet path returns them)."""
LOOKUP_COLUMNS = frozenset((*JSON_COLUMNS, *INDEXED_COLUMNS))
CANDIDATE_CAP = 20_000
"""Most candidate rows `IndexCatalog.lookup` returns; a lookup finding more is not used."""

Candidate = tuple[str, int, int]
"""A candidate row: (event file, row number, timestamp in microseconds)."""
ValueRange = tuple[int, int]
"""Values [i, j) of a ValueTable."""

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


class _Texts(Sequence[str]):
    """An Arrow string array as a sequence of Python strings, for `bisect`."""

    def __init__(self, array: pa.StringArray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self.array[i].as_py()


@dataclass(frozen=True)
class Bound:
    """One end of a range of values: the value and whether it is included."""

    value: object
    inclusive: bool


def text_range(texts: Sequence[str], key: ValueRange, low: Bound | None, high: Bound | None):
    """The values of `texts[key[0]:key[1]]` (sorted) within [low, high], as a range."""
    start, stop = key
    if low is not None:
        find = bisect.bisect_left if low.inclusive else bisect.bisect_right
        start = find(texts, low.value, start, stop)
    if high is not None:
        find = bisect.bisect_right if high.inclusive else bisect.bisect_left
        stop = find(texts, high.value, start, stop)
    return (start, stop) if start < stop else None


def number_range(
    numbers: np.ndarray, key: ValueRange, low: Bound | None, high: Bound | None
) -> ValueRange | None:
    """The values of `numbers[key[0]:key[1]]` (sorted) within [low, high], as a range."""
    start, stop = key
    values = numbers[start:stop]
    first, last = 0, len(values)
    if low is not None:
        first = int(np.searchsorted(values, low.value, "left" if low.inclusive else "right"))
    if high is not None:
        last = int(np.searchsorted(values, high.value, "right" if high.inclusive else "left"))
    return (start + first, start + last) if first < last else None


def prefix_range(texts: Sequence[str], key: ValueRange, prefix: str) -> ValueRange | None:
    """The values of `texts[key[0]:key[1]]` (sorted) that start with `prefix`."""
    start = bisect.bisect_left(texts, prefix, *key)
    stop = bisect.bisect_right(texts, prefix, start, key[1], key=lambda s: s[: len(prefix)])
    return (start, stop) if start < stop else None


def _comparison_bounds(op: str, value: object) -> tuple[Bound | None, Bound | None]:
    inclusive = op.endswith("or equal to")
    bound = Bound(value, inclusive)
    return (bound, None) if op.startswith("is greater") else (None, bound)


def _matching_texts(
    cursor: duckdb.DuckDBPyConnection, texts: pa.StringArray, key: ValueRange, condition
) -> list[ValueRange]:
    """The values of a key's strings that meet `contains`, `ends with` or a date operator,
    tested with the functions of the filter SQL."""
    start, stop = key
    values = texts.slice(start, stop - start)
    op, operand = condition.operator, condition.values[0]
    if op == "contains":
        hits = pc.match_substring(values, operand).fill_null(False)
    elif op == "ends with":
        hits = pc.ends_with(values, operand).fill_null(False)
    else:
        name = f"index_values_{threading.get_ident()}"
        cursor.register(name, pa.table({"s": values}))
        try:
            hits = cursor.sql(
                f"SELECT coalesce(TRY_CAST(s AS TIMESTAMPTZ) {DATE_COMPARISONS[op]} $m, false)"
                f" FROM {name}",
                params={"m": parse_datetime(operand)},
            ).fetchnumpy()
        finally:
            cursor.unregister(name)
        hits = next(iter(hits.values()))
    found = np.flatnonzero(np.asarray(hits, dtype=bool)) + start
    return [(int(i), int(i) + 1) for i in found]


def value_ranges(
    table: ValueTable, condition: IndexedCondition, cursor: duckdb.DuckDBPyConnection
) -> list[ValueRange] | None:
    """The values of `table` that hold every row `condition` can match, as ranges; None
    when the index cannot answer the operator."""
    op, values = condition.operator, condition.values
    if op not in _INDEXED_OPERATORS or condition.column not in LOOKUP_COLUMNS:
        return None
    texts = _Texts(table.strs)
    found: list[ValueRange | None] = []

    def key(kind: str) -> ValueRange | None:
        return table.keys.get(value_key(condition.column, kind, condition.pointer))

    def texts_between(kind: str, low: Bound | None, high: Bound | None) -> None:
        if (k := key(kind)) is not None:
            found.append(text_range(texts, k, low, high))

    def numbers_between(low: Bound | None, high: Bound | None) -> None:
        if (k := key("n")) is not None:
            found.append(number_range(table.nums, k, low, high))

    if op in ("is", "is one of", "is true", "is false"):
        options = [op.removeprefix("is ")] if op in ("is true", "is false") else list(values)
        for value in options:
            if op in ("is", "is one of"):
                texts_between("s", Bound(value, True), Bound(value, True))
                if (number := number_or_none(value)) is not None:
                    numbers_between(Bound(number, True), Bound(number, True))
            if value in ("true", "false"):
                texts_between("b", Bound(value, True), Bound(value, True))
    elif op in COMPARISONS:
        texts_between("s", *_comparison_bounds(op, values[0]))
        if (number := number_or_none(values[0])) is not None:
            numbers_between(*_comparison_bounds(op, number))
    elif op == "is between":
        texts_between("s", Bound(values[0], True), Bound(values[1], True))
        low, high = number_or_none(values[0]), number_or_none(values[1])
        if low is not None and high is not None:
            numbers_between(Bound(low, True), Bound(high, True))
    elif op == "starts with":
        if (k := key("s")) is not None:
            found.append(prefix_range(texts, k, values[0]))
    elif (k := key("s")) is not None:  # contains, ends with, date comparisons
        found.extend(_matching_texts(cursor, table.strs, k, condition))
    return [r for r in found if r is not None]


def rows_of(table: ValueTable, ranges: list[ValueRange], row_count: int) -> np.ndarray:
    """The rows (sorted, distinct) holding any value of `ranges`."""
    if not ranges:
        return np.array([], np.int32)
    bounds = np.array(ranges, dtype=np.int64)
    starts, stops = table.offsets[bounds[:, 0]], table.offsets[bounds[:, 1]]
    if len(ranges) == 1 and ranges[0][1] - ranges[0][0] == 1:
        return table.postings[starts[0] : stops[0]]  # one value: sorted already
    lengths = (stops - starts).astype(np.int64)
    total = int(lengths.sum())
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    rows = table.postings[shift + np.arange(total)]
    if total * 8 < row_count:
        return np.unique(rows)
    mask = np.zeros(row_count, dtype=bool)
    mask[rows] = True
    return np.flatnonzero(mask).astype(np.int32)


def intersect(found: list[np.ndarray], row_count: int) -> np.ndarray:
    """The rows in every one of `found` (sorted, distinct arrays)."""
    found = sorted(found, key=len)
    rows = found[0]
    for other in found[1:]:
        if not len(rows):
            break
        mask = np.zeros(row_count, dtype=bool)
        mask[other] = True
        rows = rows[mask[rows]]
    return rows


@dataclass(frozen=True)
class IndexedPartition:
    """A partition whose index matches its files: the value table file and the event files
    (in the index's order)."""

    index_file: str
    files: tuple[str, ...]


class PartitionIndex:
    """The open index files of one partition (memory-mapped)."""

    def __init__(self, index_file: str, values: ValueTable, manifest: Manifest) -> None:
        self.index_file = index_file
        self.values = values
        self.manifest = manifest
        self.order = RowOrder.open(manifest.order_file)
        self.rows = RowStore(manifest.row_store, ROW_SCHEMA)

    @property
    def row_count(self) -> int:
        return len(self.order.ts)

    def candidates(
        self,
        cursor: duckdb.DuckDBPyConnection,
        conditions: tuple[IndexedCondition, ...],
        cap: int | None = None,
    ) -> np.ndarray | None:
        """The rows (newest-first numbers, ascending) that may match all `conditions`;
        None when the index answers none of them (or, with `cap`, none within `cap` rows)."""
        found = []
        for condition in conditions:
            ranges = value_ranges(self.values, condition, cursor)
            if ranges is None:
                continue
            rows = rows_of(self.values, ranges, self.row_count)
            if cap is None or len(rows) <= cap:
                found.append(rows)
        return intersect(found, self.row_count) if found else None

    def read(
        self, rows: np.ndarray, files: Sequence[str]
    ) -> tuple[list[pa.RecordBatch], np.ndarray, np.ndarray]:
        """The rows numbered `rows`, in that order (as `RowStore.slices`), with their event
        files and row numbers in them."""
        names = np.asarray(files, dtype=object)[self.order.file[rows]]
        return self.rows.slices(rows), names, self.order.row[rows].astype(np.int64)


class IndexCatalog:
    """Finds and opens the current index of each partition (one open index per partition
    folder is kept, so a replaced index is released)."""

    def __init__(self, lake: Path) -> None:
        self.lake = lake
        self._open: dict[str, tuple[str, PartitionIndex | None]] = {}  # by folder
        self._lock = threading.Lock()

    def current(self, partition_name: str, files: tuple[str, ...]) -> IndexedPartition | None:
        """The partition's index when it was built from exactly `files` as they are now."""
        found = index_files(index_dir(self.lake, partition_name))
        if not found:
            return None
        index = self._index(found[0])
        try:
            current = tuple(FileSignature.of(f) for f in files)
        except FileNotFoundError:
            return None
        if index is None or index.manifest.files != current:
            return None
        return IndexedPartition(found[0], files)

    def open(self, partition: IndexedPartition) -> PartitionIndex:
        """The open index of a partition that `current` returned."""
        index = self._index(partition.index_file)
        if index is None:  # pragma: no cover - current() opened it
            raise FileNotFoundError(partition.index_file)
        return index

    def _index(self, path: str) -> PartitionIndex | None:
        """The open index whose value table is `path` (None when unusable), cached."""
        folder = os.path.dirname(path)
        with self._lock:
            cached = self._open.get(folder)
        if cached is not None and cached[0] == path:
            return cached[1]
        index = _open_index(path)
        with self._lock:
            self._open[folder] = (path, index)
        return index

    def lookup(
        self,
        cursor: duckdb.DuckDBPyConnection,
        partitions: list[IndexedPartition],
        conditions: tuple[IndexedCondition, ...],
        cap: int = CANDIDATE_CAP,
    ) -> list[Candidate] | None:
        """The candidate rows of `partitions` for `conditions`, or None when no condition
        can use the index within `cap` rows (per partition and in all)."""
        found: list[Candidate] = []
        for partition in partitions:
            index = self.open(partition)
            rows = index.candidates(cursor, conditions, cap)
            if rows is None:
                return None
            files, order = partition.files, index.order
            found.extend(
                (files[f], int(r), int(t))
                for f, r, t in zip(order.file[rows], order.row[rows], order.ts[rows], strict=True)
            )
            if len(found) > cap:
                return None
        return sorted(found)


def _open_index(path: str) -> PartitionIndex | None:
    """The index whose value table is `path`; None when it is not usable."""
    try:
        values, schema = ValueTable.open(path)
        manifest = parse_manifest(path, schema)
        return PartitionIndex(path, values, manifest) if manifest else None
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def by_file(candidates: list[Candidate]) -> dict[str, list[int]]:
    """{event file: its candidate row numbers, ascending}."""
    rows: dict[str, list[int]] = {}
    for path, row, _ in sorted(candidates):
        rows.setdefault(path, []).append(row)
    return rows
