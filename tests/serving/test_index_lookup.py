"""The pieces of serving-index lookups: value ranges by binary search, rows of ranges,
intersections, prefixes with ties, and the compressed row store."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from api_support import CANONICAL_EVENTS, write_lake

from eventpipe.serving import row_store
from eventpipe.serving.index_build import read_partition
from eventpipe.serving.index_format import ValueTable
from eventpipe.serving.index_lookup import (
    Bound,
    intersect,
    number_range,
    prefix_range,
    rows_of,
    text_range,
)
from eventpipe.serving.index_pages import tied_prefix

# Sorted values of one key at [2, 9) of a longer table (other keys around it).
TEXTS = ["zz", "zz", "", "a", "b", "ba", "bb", "c", "é", "a", "a"]
KEY = (2, 9)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (Bound("b", True), Bound("b", True), (4, 5)),
        (Bound("bc", True), Bound("bc", True), None),
        (Bound("b", False), None, (5, 9)),  # > "b"
        (Bound("b", True), None, (4, 9)),  # >= "b"
        (None, Bound("b", False), (2, 4)),  # < "b"
        (None, Bound("b", True), (2, 5)),  # <= "b"
        (Bound("", True), Bound("", True), (2, 3)),
        (Bound("c", True), Bound("a", True), None),  # between with low > high
        (Bound("zz", True), None, (8, 9)),  # code point order: "é" > "zz"
        (Bound("é", False), None, None),  # the next key's values are not seen
        (None, None, KEY),
    ],
)
def test_text_range(low: Bound | None, high: Bound | None, expected: tuple | None) -> None:
    assert text_range(TEXTS, KEY, low, high) == expected


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("b", (4, 7)), ("ba", (5, 6)), ("", KEY), ("d", None), ("é", (8, 9)), ("zz", None)],
)
def test_prefix_range(prefix: str, expected: tuple | None) -> None:
    assert prefix_range(TEXTS, KEY, prefix) == expected


NUMBERS = np.array([9.0, -3.0, 0.0, 2.5, 2.5, 1e20, -1.0])  # the key: [1, 6)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (Bound(2.5, True), Bound(2.5, True), (3, 5)),
        (Bound(2.5, False), None, (5, 6)),
        (None, Bound(0.0, True), (1, 3)),
        (None, Bound(-3.0, False), None),
        (Bound(-5.0, True), Bound(2.5, True), (1, 5)),
        (Bound(9.0, True), None, (5, 6)),
        (Bound(1e20, False), None, None),
    ],
)
def test_number_range(low: Bound | None, high: Bound | None, expected: tuple | None) -> None:
    assert number_range(NUMBERS, (1, 6), low, high) == expected


def _values(postings: list[list[int]]) -> ValueTable:
    offsets = np.concatenate(([0], np.cumsum([len(p) for p in postings])))
    flat = np.array([r for p in postings for r in p], np.int32)
    return ValueTable({}, pa.array([""] * len(postings)), np.zeros(len(postings)), offsets, flat)


@pytest.mark.parametrize("row_count", [10, 1000])  # sorted by np.unique, or by a mask
def test_rows_of_ranges_are_sorted_and_distinct(row_count: int) -> None:
    table = _values([[1, 5, 7], [0, 5], [2], [3, 9]])
    assert rows_of(table, [], row_count).tolist() == []
    assert rows_of(table, [(0, 1)], row_count).tolist() == [1, 5, 7]
    assert rows_of(table, [(0, 2)], row_count).tolist() == [0, 1, 5, 7]
    assert rows_of(table, [(3, 4), (0, 1), (2, 3)], row_count).tolist() == [1, 2, 3, 5, 7, 9]


def test_intersect() -> None:
    found = [np.array([1, 3, 5, 8]), np.array([0, 3, 8, 9]), np.array([3, 4, 8])]
    assert intersect(found, 10).tolist() == [3, 8]
    assert intersect([np.array([2])], 10).tolist() == [2]
    assert intersect([np.array([], np.int32), np.array([1])], 10).tolist() == []


@pytest.mark.parametrize(
    ("count", "expected"),
    [(1, [0]), (2, [0, 1, 2]), (3, [0, 1, 2]), (4, [0, 1, 2, 3, 4]), (9, [0, 1, 2, 3, 4, 5])],
)
def test_tied_prefix_takes_every_row_tied_with_the_last(count: int, expected: list[int]) -> None:
    ts = np.array([50, 40, 40, 30, 30, 20])
    assert tied_prefix(ts, np.arange(6), count).tolist() == expected


def test_row_store_returns_the_rows_asked_for_in_that_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = write_lake(tmp_path / "lake", CANONICAL_EVENTS)
    files = sorted(str(p) for p in (lake / "events").rglob("*.parquet"))
    rows = read_partition(files)
    rows = pa.concat_tables([rows] * 40)  # enough blocks to train a dictionary
    monkeypatch.setattr(row_store, "BLOCK_ROWS", 4)
    path = tmp_path / "rows.arrow"
    row_store.write_row_store(rows, path)
    store = row_store.RowStore(str(path), rows.schema)
    order = list(range(rows.num_rows))
    random.Random(3).shuffle(order)
    wanted = [*order[:50], order[0], 0, rows.num_rows - 1]
    assert store.read(np.array(wanted)).equals(rows.take(wanted))
    assert store.read(np.array([], np.int64)).num_rows == 0
