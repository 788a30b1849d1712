"""The serving index changes how rows are found, never which: the same requests over an
indexed lake, over the same lake without its index, and the independent reference
(reference_query: pyarrow rows, Python filter and sort) agree;
a partition whose files changed after indexing is scanned."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from api_support import CANONICAL_EVENTS, make_event, write_lake
from reference_query import lake_rows, reference_page

from eventpipe.api.filters import parse_filter
from eventpipe.api.query import EventQuery, LakeReader
from eventpipe.api.rows import events_from_table
from eventpipe.jobs.serve import _log_index_coverage
from eventpipe.query.duckdb_dialect import table_source
from eventpipe.schemas import TOP_LEVEL_COLUMNS
from eventpipe.serving import row_store
from eventpipe.serving.index_build import (
    INDEX,
    build_partition_index,
    index_is_current,
    index_lake,
)
from eventpipe.serving.index_pages import page_from_index

COLUMNS = ("messageId", "userId", "timestamp", "properties")
BASE = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)


def _properties(rng: random.Random) -> Any:
    """Varied json: strings that look like numbers or booleans, big and negative numbers,
    booleans, JSON nulls, missing keys, nested objects, arrays, keys with / and ~,
    duplicate keys, non-object documents and a null column."""
    kind = rng.randrange(20)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice(['["pro", 1]', '"pro"', "5", "null", "{}", "[]"])
    if kind == 2:
        return '{"plan": "free", "plan": "pro", "n": 3}'  # duplicate key
    doc: dict[str, Any] = {
        "plan": rng.choice(["free", "pro", "Pro", "pro ", 'p"q', "é", "5", "true", "", None]),
        "price": rng.choice([1, 2.5, -3, 1e20, 18446744073709551615, 0, "2.5", True]),
        "n": rng.randrange(10),
        "flag": rng.choice([True, False, None, "true"]),
        "tags": rng.choice([["x", "y"], ["y"], [], [["x"]], "x"]),
        "nested": {"city": rng.choice(["Rome", "Paris", None]), "a/b": rng.randrange(3), "t~": "z"},
        "when": rng.choice(["2025-10-02T10:00:00Z", "2025-09-30", "not a date", 5]),
    }
    for key in list(doc):
        if rng.random() < 0.15:
            del doc[key]
    return doc


def _rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        make_event(
            messageId=f"m{seed}-{i:05d}",
            timestamp=BASE + dt.timedelta(seconds=rng.randrange(3 * 86_400) // 5 * 5),
            userId=rng.choice([None, "u1", "u2", "u3"]),
            context=rng.choice([None, {"session": {"id": rng.choice([7, -3, 2**63 - 1, 8])}}]),
            properties=_properties(rng),
            traits=rng.choice(
                ["{}", {"address": {"city": "Paris"}, "age": 7}, {"age": 3}, {"age": "7"}]
            ),
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(indexed lake, the same lake without an index, the same lake fully indexed): 3 days,
    2 files a day, small row groups; in the first, the third file of 2025-10-03 was added
    after indexing (a stale index)."""
    indexed = tmp_path_factory.mktemp("indexed-lake")
    write_lake(indexed, _rows(800, 1), row_group_size=64)
    write_lake(indexed, _rows(800, 2), file_name="part-1.parquet", row_group_size=64)
    with pytest.MonkeyPatch.context() as patch:  # many index row groups: lookups prune them
        patch.setattr(row_store, "BLOCK_ROWS", 8)
        report = index_lake(str(indexed))
    assert (report.partitions, report.indexed, report.errors) == (3, 3, [])
    late = [r for r in _rows(200, 3) if r["timestamp"].date() == dt.date(2025, 10, 3)]
    write_lake(indexed, late, file_name="part-2.parquet", row_group_size=64)
    plain = tmp_path_factory.mktemp("plain-lake")
    shutil.copytree(indexed / "events", plain / "events")
    full = tmp_path_factory.mktemp("full-lake")
    shutil.copytree(indexed, full, dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(row_store, "BLOCK_ROWS", 8)
        assert index_lake(str(full)).indexed == 1
    return indexed, plain, full


def _filter(logical: str, *conditions: tuple) -> str:
    return json.dumps(
        {
            "logical": logical,
            "conditions": [
                {"property": c[0], "operator": c[1], "values": list(c[2:])} for c in conditions
            ],
        }
    )


FILTERS = [
    _filter("and", ("properties.plan", "is", "pro")),
    _filter("and", ("properties.plan", "is one of", "pro", "5", "true", 'p"q', "é")),
    _filter("and", ("properties.plan", "is", "")),
    _filter("and", ("properties.plan", "contains", "r")),
    _filter("and", ("properties.plan", "starts with", "p")),
    _filter("and", ("properties.plan", "ends with", "o")),
    _filter("and", ("properties.plan", "is greater than", "m")),
    _filter("and", ("properties.plan", "is between", "a", "q")),
    _filter("and", ("properties.plan", "is not", "pro")),
    _filter("and", ("properties.plan", "is null")),
    _filter("and", ("properties.price", "is greater than", "1")),
    _filter("and", ("properties.price", "is", "18446744073709551615")),
    _filter("and", ("properties.price", "is between", "-5", "2.5")),
    _filter("and", ("properties.price", "is less than or equal to", "0")),
    _filter("and", ("properties.price", "is", "true")),
    _filter("and", ("properties.flag", "is true")),
    _filter("and", ("properties.flag", "is false")),
    _filter("and", ("properties.tags.0", "is", "x")),
    _filter("and", ("properties.tags.00", "is", "x")),
    _filter("and", ("properties.nested.city", "is", "Rome")),
    _filter("and", ("properties.nested.a/b", "is", "2")),
    _filter("and", ("properties.nested.t~", "is", "z")),
    _filter("and", ("properties.when", "is after", "2025-10-01")),
    _filter("and", ("properties.missing", "is", "x")),
    _filter("and", ("properties", "is", "pro")),
    _filter("and", ("traits.address.city", "is", "Paris")),
    _filter("and", ("traits.age", "is greater than", "5")),
    _filter("and", ("properties.n", "is one of", "1", "2"), ("userId", "is", "u1")),
    _filter("and", ("properties.plan", "is", "pro"), ("properties.n", "is greater than", "5")),
    _filter("and", ("properties.plan", "is", "pro"), ("timestamp", "is after", "2025-10-02")),
    _filter("or", ("properties.plan", "is", "pro"), ("properties.n", "is", "3")),
    _filter("and", ("userId", "is", "u2")),
    _filter("and", ("userId", "is one of", "u1", "u3", "nobody")),
    _filter("and", ("userId", "starts with", "u")),
    _filter("and", ("userId", "is greater than", "u1")),
    _filter("and", ("userId", "ends with", "3"), ("properties.flag", "is true")),
    _filter("and", ("anonymousId", "contains", "a")),
    _filter("or", ("userId", "is", "u2"), ("userId", "is null")),
    _filter("and", ("context.session.id", "is", "7")),
    _filter("and", ("context.session.id", "is one of", "+07", "-3", "9223372036854775807")),
    _filter("and", ("context.session.id", "is greater than", "5"), ("properties.n", "is", "3")),
]


def _query(text: str, order: str, ascending: bool, first: int, limit: int) -> EventQuery:
    return EventQuery(COLUMNS, parse_filter(text), order, ascending, first, limit, connections=None)


SHAPES = [
    ("timestamp", False, 0, 100),
    ("timestamp", False, 0, 7),
    ("timestamp", True, 0, 50),
    ("timestamp", False, 120, 30),
    ("timestamp", True, 1000, 100),
    ("userId", False, 0, 40),
]


@pytest.fixture(scope="module")
def plain_rows(lakes: tuple[Path, Path, Path]) -> list[dict]:
    """The rows of the lakes, for the independent reference (reference_query)."""
    return lake_rows(lakes[1])


@pytest.mark.parametrize("text", FILTERS)
def test_indexed_unindexed_and_reference_agree(
    lakes: tuple[Path, Path, Path], plain_rows: list[dict], text: str
) -> None:
    indexed, plain, full = lakes
    readers = [
        LakeReader(indexed, recent_rows=64),
        LakeReader(indexed, recent_rows=64, candidate_cap=40),  # lookups often over the cap
        LakeReader(full),  # few candidates: served from the row stores
        LakeReader(full, row_store_rows=0),  # candidate rows read from the Parquet files
        LakeReader(plain),
    ]
    for order, ascending, first, limit in SHAPES:
        query = _query(text, order, ascending, first, limit)
        expected = reference_page(plain_rows, json.loads(text), order, ascending, first, limit)
        for reader in readers:
            got = reader.list_events(query)
            assert got["messageId"].to_pylist() == expected, (reader.lake, order, first)
        assert got.column_names == list(COLUMNS)


def test_the_index_is_used_and_finds_only_candidates(lakes: tuple[Path, Path, Path]) -> None:
    indexed, _, _ = lakes
    reader = LakeReader(indexed)
    predicate = parse_filter(_filter("and", ("properties.nested.city", "is", "Rome")))
    assert predicate is not None
    current = [reader.indexes.current(p.name, p.files) for p in reader.partitions()]
    assert [c is not None for c in current] == [True, True, False]  # 10-03 gained a file
    cursor = reader._db.cursor()
    candidates = reader.indexes.lookup(
        cursor, [c for c in current if c], predicate.indexed_conditions
    )
    assert candidates is not None
    found = len(candidates)
    matches = cursor.execute(
        f"SELECT count(*) FROM {table_source('read_parquet($files)', predicate)}"
        f" WHERE {predicate.sql}",
        {**predicate.params, "files": [f for c in current if c for f in c.files]},
    ).fetchone()[0]
    assert 0 < matches == found < 2000  # the condition is exact here: candidates = matches
    assert (
        reader.indexes.lookup(cursor, [c for c in current if c], predicate.indexed_conditions, 10)
        is None
    )


def test_a_rewritten_file_makes_the_index_stale(tmp_path: Path) -> None:
    lake = write_lake(tmp_path, _rows(1, 4), row_group_size=64)
    folder = next((lake / "events").iterdir())
    build_partition_index(lake, str(folder))
    assert index_is_current(lake, str(folder))
    reader = LakeReader(lake)
    query = _query(_filter("and", ("userId", "is not null")), "timestamp", False, 0, 10)
    assert reader.list_events(query).num_rows in (0, 1)
    # Same name, other rows: size and modification time change, the index is not trusted.
    rows = [make_event(timestamp=BASE, properties={"plan": "pro"}, messageId="new")]
    (folder / "part-0.parquet").unlink()
    write_lake(lake, rows)
    os.utime(folder / "part-0.parquet", ns=(1, 1))
    assert not index_is_current(lake, str(folder))
    assert reader.indexes is not None
    partition = reader.partitions()[0]
    assert reader.indexes.current(partition.name, partition.files) is None
    got = reader.list_events(_query(_filter("and", ("properties.plan", "is", "pro")), *SHAPES[0]))
    assert got["messageId"].to_pylist() == ["new"]


def test_index_lake_reindexes_only_what_changed_and_drops_gone_partitions(
    lakes: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(lakes[0], lake)
    assert index_lake(str(lake), dry_run=True).indexed == 1  # 2025-10-03 gained a file
    report = index_lake(str(lake))
    assert (report.partitions, report.indexed, report.errors) == (3, 1, [])
    assert report.entries > 0
    assert index_lake(str(lake)).indexed == 0
    shutil.rmtree(lake / "events" / "date=2025-10-01")
    index_lake(str(lake))
    assert sorted(p.name for p in (lake / INDEX / "events").iterdir()) == [
        "date=2025-10-02",
        "date=2025-10-03",
    ]
    for folder in (lake / INDEX / "events").iterdir():  # one index: its three files
        names = sorted(p.name for p in folder.iterdir())
        assert [n.split("-", 1)[0] for n in names] == ["index", "order", "rows"]
        assert len({n.split("-", 1)[1] for n in names}) == 1


def test_rows_served_from_the_row_store_equal_the_parquet_rows(tmp_path: Path) -> None:
    lake = write_lake(tmp_path / "lake", CANONICAL_EVENTS)
    assert index_lake(str(lake)).indexed > 0
    text = _filter("or", ("properties.price", "is greater than", "-100"))
    query = EventQuery(
        TOP_LEVEL_COLUMNS, parse_filter(text), "timestamp", False, 0, 100, connections=None
    )
    served, parquet = LakeReader(lake), LakeReader(lake, use_index=False)
    got, expected = served.list_events(query), parquet.list_events(query)
    assert got.num_rows == 5
    assert got.equals(expected)
    assert events_from_table(got) == events_from_table(expected)


def test_serve_says_how_many_partitions_are_indexed(
    lakes: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventpipe.jobs.serve")
    indexed, _, full = lakes
    _log_index_coverage(indexed)
    _log_index_coverage(full)
    assert "2 of 3 event partitions have a current serving index (run eventpipe compact" in (
        caplog.text
    )
    assert "3 of 3 event partitions have a current serving index\n" in caplog.text


def test_pages_are_read_through_the_index_when_every_partition_has_one(
    lakes: tuple[Path, Path, Path], plain_rows: list[dict]
) -> None:
    _, _, full = lakes
    reader = LakeReader(full)
    assert reader.indexes is not None
    indexed = [reader.indexes.current(p.name, p.files) for p in reader.partitions()]
    assert all(indexed)
    cursor = reader._db.cursor()
    rome = _filter("and", ("properties.nested.city", "is", "Rome"))
    for order, ascending, first, limit in SHAPES:
        query = _query(rome, order, ascending, first, limit)
        page = page_from_index(reader.indexes, cursor, indexed, query, budget=10_000)
        assert page is not None
        expected = reference_page(plain_rows, json.loads(rome), order, ascending, first, limit)
        assert page["messageId"].to_pylist() == expected
    query = _query(rome, "timestamp", False, 0, 10)
    assert page_from_index(reader.indexes, cursor, indexed, query, budget=10) is None
    unindexed = _query(_filter("and", ("properties.plan", "is null")), "timestamp", False, 0, 10)
    assert page_from_index(reader.indexes, cursor, indexed, unindexed, budget=10_000) is None


def test_a_partition_without_json_values_is_indexed_and_served(tmp_path: Path) -> None:
    rows = [
        make_event(
            messageId=f"e{i}",
            timestamp=BASE + dt.timedelta(minutes=i),
            properties=None,
            traits="{}",
            userId=None,
        )
        for i in range(5)
    ]
    lake = write_lake(tmp_path, rows)
    assert index_lake(str(lake)).indexed == 1
    reader = LakeReader(lake)
    assert reader.indexes is not None
    [partition] = reader.partitions()
    current = reader.indexes.current(partition.name, partition.files)
    assert current is not None and reader.indexes.open(current).row_count == 5
    latest = reader.list_events(
        EventQuery(COLUMNS, None, "timestamp", False, 1, 3, connections=None)
    )
    assert latest["messageId"].to_pylist() == ["e3", "e2", "e1"]
    pro = _query(_filter("and", ("properties.plan", "is", "pro")), *SHAPES[0])
    assert reader.list_events(pro).num_rows == 0
