"""Serving-index lookups and pages in process, over a small real lake that the product's
`index_lake` indexed in a tmp dir: the candidates of every indexed operator against the
rows the filter matches (the independent reference of `reference_query`), pages through
the index against the reference page at partition boundaries, with timestamp ties, both
directions and other orders, filters the index answers and filters it does not, budgets,
caps, empty and missing days, and a stale, missing or damaged index."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from api_support import make_event, write_lake
from reference_query import filter_matches, lake_rows, reference_page

from eventpipe.api.filters import parse_filter
from eventpipe.schemas import arrow_schema
from eventpipe.schemas.lake_layout import list_partitions
from eventpipe.serving import index_pages, row_store
from eventpipe.serving.event_query import EventQuery
from eventpipe.serving.index_build import INDEX, build_partition_index, index_lake
from eventpipe.serving.index_format import write_arrow
from eventpipe.serving.index_lookup import IndexCatalog, IndexedPartition, by_file
from eventpipe.serving.index_pages import (
    page_by_position,
    page_from_index,
    prefix,
    tie_bounds,
)

COLUMNS = ("messageId", "userId", "timestamp", "properties")
BASE = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
DAYS = (0, 1, 3)  # 2025-10-03 is missing; 2025-10-05 holds an empty file


def _properties(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return rng.choice([None, '"pro"', "[1]"])
    doc: dict[str, Any] = {
        "plan": rng.choice(["pro", "free", "Pro", "", "5", "true", "pr", None]),
        "price": rng.choice([1, 2.5, -3, 0, 1e20, "2.5", True]),
        "n": rng.randrange(6),
        "flag": rng.choice([True, False, "true", None]),
        "when": rng.choice(["2025-10-02T10:00:00Z", "2025-09-30", "not a date", 5]),
        "nested": {"city": rng.choice(["Rome", "Paris", "Roma"])},
    }
    for key in list(doc):
        if rng.random() < 0.15:
            del doc[key]
    return doc


def _rows(day: int, part: int, count: int) -> list[dict[str, Any]]:
    """`count` rows of one day; timestamps on 12 five-minute steps, so many are tied."""
    rng = random.Random(day * 10 + part)
    return [
        make_event(
            messageId=f"d{day}-p{part}-{rng.randrange(1000):03d}-{i:02d}",
            timestamp=BASE + dt.timedelta(days=day, minutes=5 * rng.randrange(12)),
            userId=rng.choice([None, "u1", "u2", "u3"]),
            anonymousId=rng.choice(["anon-a", "anon-b", "x"]),
            context=rng.choice([None, {"session": {"id": rng.choice([7, -3, 8])}}]),
            properties=_properties(rng),
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 indexed days of 2 files (2025-10-01, -02, -04; none on -03) and an indexed empty
    day (2025-10-05: one file without rows); row store blocks of 4 rows."""
    root = tmp_path_factory.mktemp("lake")
    for day in DAYS:
        write_lake(root, _rows(day, 0, 25))
        write_lake(root, _rows(day, 1, 15), file_name="part-1.parquet")
    empty = root / "events" / "date=2025-10-05"
    empty.mkdir()
    pq.write_table(pa.Table.from_pylist([], schema=arrow_schema()), empty / "part-0.parquet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(row_store, "BLOCK_ROWS", 4)
        report = index_lake(str(root))
    assert (report.partitions, report.indexed, report.errors) == (4, 4, [])
    return root


@pytest.fixture(scope="module")
def rows(lake: Path) -> list[dict[str, Any]]:
    return lake_rows(lake)


@pytest.fixture(scope="module")
def places(lake: Path) -> list[tuple[str, int]]:
    """(event file, row number) of each of `lake_rows`' rows, in its order."""
    files = sorted(str(f) for f in (lake / "events").glob("date=*/*.parquet"))
    return [(f, r) for f in files for r in range(pq.ParquetFile(f).metadata.num_rows)]


@pytest.fixture(scope="module")
def catalog(lake: Path) -> IndexCatalog:
    return IndexCatalog(lake)


@pytest.fixture(scope="module")
def indexed(lake: Path, catalog: IndexCatalog) -> list[IndexedPartition]:
    """The current index of every partition, oldest first."""
    found = [catalog.current(p.name, p.files) for p in list_partitions(lake, "events")]
    assert all(found) and len(found) == 4
    return [f for f in found if f]


@pytest.fixture(scope="module")
def cursor() -> duckdb.DuckDBPyConnection:
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    return db.cursor()


def _doc(logical: str, *conditions: tuple) -> dict:
    return {
        "logical": logical,
        "conditions": [
            {"property": c[0], "operator": c[1], "values": list(c[2:])} for c in conditions
        ],
    }


# Filters whose indexed conditions select exactly the rows they match: every operator the
# index answers, on json strings, numbers, booleans and dates, and on the indexed columns.
EXACT = [
    _doc("and", ("properties.plan", "is", "pro")),
    _doc("and", ("properties.plan", "is", "")),
    _doc("and", ("properties.plan", "is one of", "pro", "free", "nobody")),
    _doc("and", ("properties.plan", "is greater than", "pr")),
    _doc("and", ("properties.plan", "is greater than or equal to", "pr")),
    _doc("and", ("properties.plan", "is less than", "pro")),
    _doc("and", ("properties.plan", "is less than or equal to", "pro")),
    _doc("and", ("properties.plan", "is between", "Pro", "pr")),
    _doc("and", ("properties.plan", "starts with", "pr")),
    _doc("and", ("properties.plan", "contains", "r")),
    _doc("and", ("properties.plan", "ends with", "o")),
    _doc("and", ("properties.price", "is", "2.5")),
    _doc("and", ("properties.price", "is one of", "1", "-3")),
    _doc("and", ("properties.price", "is greater than", "1")),
    _doc("and", ("properties.price", "is greater than or equal to", "1")),
    _doc("and", ("properties.price", "is less than", "0")),
    _doc("and", ("properties.price", "is less than or equal to", "0")),
    _doc("and", ("properties.price", "is between", "-3", "1")),
    _doc("and", ("properties.price", "is between", "0", "1e30")),
    _doc("and", ("properties.price", "is between", "1", "z")),  # strings only
    _doc("and", ("properties.price", "is between", "-", "5")),
    _doc("and", ("properties.flag", "is true")),
    _doc("and", ("properties.flag", "is false")),
    _doc("and", ("properties.flag", "is", "true")),
    _doc("and", ("properties.when", "is after", "2025-10-01")),
    _doc("and", ("properties.when", "is before", "2025-10-01")),
    _doc("and", ("properties.nested.city", "is", "Rome")),
    _doc("and", ("properties.nested.city", "starts with", "Rom")),
    # The next key's values ("/plan": "pro", "free") would match too: only this key's count.
    _doc("and", ("properties.nested.city", "contains", "r")),
    _doc("and", ("properties.nested.city", "ends with", "o")),
    _doc("and", ("userId", "is", "u2")),
    _doc("and", ("userId", "is one of", "u1", "u3")),
    _doc("and", ("userId", "is greater than", "u1")),
    _doc("and", ("anonymousId", "contains", "anon")),
    _doc("and", ("anonymousId", "ends with", "-b")),
    _doc("and", ("context.session.id", "is", "7")),
    _doc("and", ("context.session.id", "is one of", "-3", "+08")),
    _doc("and", ("properties.plan", "is", "pro"), ("userId", "is", "u1")),
    _doc("and", ("properties.n", "is greater than", "2"), ("properties.flag", "is true")),
    _doc("and", ("properties.missing", "is", "x")),
]
# Filters with indexed conditions that select a superset (other conditions, `or` of one).
WIDER = [
    _doc("and", ("properties.plan", "is", "pro"), ("properties.price", "is null")),
    _doc("and", ("properties.plan", "is", "pro"), ("timestamp", "is after", "2025-10-02")),
    _doc("and", ("userId", "is", "u1"), ("properties.plan", "is not", "pro")),
    # A condition the index does not answer does not stop the next one from narrowing.
    _doc("and", ("properties.plan", "is null"), ("userId", "is", "u2")),
]
UNANSWERED = [  # indexed conditions whose operator the index does not answer
    _doc("and", ("properties.plan", "is null")),
    _doc("and", ("properties.plan", "is not", "pro")),
    _doc("and", ("userId", "is not null")),
]
UNINDEXED = [  # no indexed condition at all: every row is a candidate
    _doc("or", ("properties.plan", "is", "pro"), ("properties.n", "is", "3")),
    _doc("and", ("event", "is", "Workout Completed")),
    _doc("and", ("context.session.id", "is less than", "8")),
]
SESSION = _doc("and", ("context.session.id", "is", "7"), ("context.session.id", "is not null"))
"""A filter on a struct column (DuckDB refuses the row stores' sliced struct columns)."""
WHEN = _doc("and", ("properties.when", "is after", "2025-10-01"))
"""A date operator: its values are tested by DuckDB (the request's cursor)."""
RARE = _doc("and", ("anonymousId", "contains", "a"), ("messageId", "ends with", "0"))
"""About one candidate in eight matches."""


def _conditions(document: dict) -> tuple:
    predicate = parse_filter(json.dumps(document))
    assert predicate is not None
    return predicate.indexed_conditions


def _matching(rows: list[dict], places: list[tuple[str, int]], document: dict) -> list:
    return sorted(p for r, p in zip(rows, places, strict=True) if filter_matches(r, document))


@pytest.mark.parametrize("document", EXACT, ids=json.dumps)
def test_candidates_are_exactly_the_matching_rows(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, places: list, document: dict
) -> None:
    found = catalog.lookup(cursor, indexed, _conditions(document))
    assert found is not None
    expected = _matching(rows, places, document)
    assert [(f, r) for f, r, _ in found] == expected
    stamps = {(f, r): row["timestamp"] for row, (f, r) in zip(rows, places, strict=True)}
    assert all(t == _micros(stamps[(f, r)]) for f, r, t in found)


def _micros(stamp: dt.datetime) -> int:
    return (stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


@pytest.mark.parametrize("document", WIDER, ids=json.dumps)
def test_candidates_of_a_wider_filter_hold_every_match(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, places: list, document: dict
) -> None:
    found = catalog.lookup(cursor, indexed, _conditions(document))
    assert found is not None
    candidates = {(f, r) for f, r, _ in found}
    expected = set(_matching(rows, places, document))
    assert expected < candidates


@pytest.mark.parametrize("document", UNANSWERED, ids=json.dumps)
def test_a_filter_the_index_cannot_answer_has_no_candidates(
    catalog: IndexCatalog, indexed: list, cursor: Any, document: dict
) -> None:
    assert catalog.lookup(cursor, indexed, _conditions(document)) is None
    query = EventQuery(
        COLUMNS, parse_filter(json.dumps(document)), "timestamp", False, 0, 10, connections=None
    )
    assert page_from_index(catalog, cursor, indexed, query, budget=10_000) is None


@pytest.mark.parametrize("document", UNINDEXED, ids=json.dumps)
def test_a_filter_without_indexed_conditions_reads_every_row(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, document: dict
) -> None:
    conditions = _conditions(document)
    assert conditions == ()
    assert catalog.lookup(cursor, indexed, conditions) is None
    for shape in [s for s in SHAPES if s[2] < 38]:
        query = EventQuery(COLUMNS, parse_filter(json.dumps(document)), *shape, connections=None)
        page = page_from_index(catalog, cursor, indexed, query, budget=10_000)
        assert page is not None, shape  # the first read holds the page
        assert page["messageId"].to_pylist() == reference_page(rows, document, *shape)


def test_lookup_cap_is_inclusive(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, places: list
) -> None:
    """A lookup finding exactly `cap` rows is used, one more is not; per partition too."""
    document = _doc("and", ("userId", "is", "u2"))
    conditions = _conditions(document)
    total = len(_matching(rows, places, document))
    assert len(catalog.lookup(cursor, indexed, conditions, cap=total) or []) == total
    assert catalog.lookup(cursor, indexed, conditions, cap=total - 1) is None
    # One partition's own count is its cap: over it, the condition is not used there.
    first = catalog.open(indexed[0])
    own = first.candidates(cursor, conditions)
    assert own is not None and 0 < len(own) < total
    assert first.candidates(cursor, conditions, cap=len(own)).tolist() == own.tolist()
    assert first.candidates(cursor, conditions, cap=len(own) - 1) is None
    # Of two conditions, the one over the cap is dropped and the other still narrows.
    both = _conditions(_doc("and", ("userId", "is", "u2"), ("properties.n", "is", "3")))
    narrow = first.candidates(cursor, both[1:])
    assert narrow is not None
    assert first.candidates(cursor, both, cap=len(narrow)).tolist() == narrow.tolist()


def test_a_condition_over_the_cap_is_dropped_and_the_others_narrow(
    catalog: IndexCatalog, indexed: list, cursor: Any
) -> None:
    """Within `cap`, a partition's candidates are those of its conditions within `cap`
    rows: a frequent condition is not used there (its rows are not read at all)."""
    frequent = _conditions(_doc("and", ("anonymousId", "contains", "a")))
    rare = _conditions(_doc("and", ("properties.n", "is", "3")))
    alone = catalog.lookup(cursor, indexed, rare)
    assert alone is not None
    cap = len(alone)
    assert all(len(catalog.open(p).candidates(cursor, frequent)) > cap for p in indexed[:-1])
    assert catalog.lookup(cursor, indexed, frequent + rare, cap) == alone
    both = catalog.lookup(cursor, indexed, frequent + rare)
    assert both is not None and set(both) < set(alone)  # without a cap, both narrow


def test_candidates_are_ascending_newest_first_numbers(
    catalog: IndexCatalog, indexed: list, cursor: Any
) -> None:
    index = catalog.open(indexed[1])
    rows = index.candidates(cursor, _conditions(_doc("and", ("userId", "is one of", "u1", "u2"))))
    assert rows is not None and len(rows) > 2
    assert (np.diff(rows) > 0).all()
    ts = index.order.ts
    assert (np.diff(ts) <= 0).all() and index.row_count == 40  # newest first
    batches, files, numbers = index.read(rows, indexed[1].files)
    table = pa.Table.from_batches(batches)
    for got, name, number in zip(table.to_pylist(), files, numbers, strict=True):
        assert got == pq.read_table(name).slice(int(number), 1).to_pylist()[0]


SHAPES = [
    ("timestamp", False, 0, 5),
    ("timestamp", False, 3, 4),
    ("timestamp", False, 38, 4),  # across a partition boundary (40 rows a day)
    ("timestamp", True, 0, 7),
    ("timestamp", True, 39, 2),
    ("timestamp", True, 10, 1000),
    ("timestamp", False, 0, 1000),
    ("timestamp", False, 500, 10),  # past the end
    ("userId", False, 0, 20),
    ("userId", True, 2, 5),
    ("messageId", True, 0, 10),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("document", [*EXACT[::3], *WIDER, SESSION, WHEN], ids=json.dumps)
def test_pages_through_the_index_equal_the_reference(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, document: dict, shape: tuple
) -> None:
    order, ascending, first, limit = shape
    query = EventQuery(
        COLUMNS, parse_filter(json.dumps(document)), order, ascending, first, limit,
        connections=None,
    )  # fmt: skip
    page = page_from_index(catalog, cursor, indexed, query, budget=10_000)
    assert page is not None
    assert page.column_names == list(COLUMNS)
    assert page["messageId"].to_pylist() == reference_page(
        rows, document, order, ascending, first, limit
    )


@pytest.mark.parametrize("shape", SHAPES[:8], ids=str)
def test_unfiltered_pages_by_position_equal_the_reference(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, shape: tuple
) -> None:
    order, ascending, first, limit = shape
    query = EventQuery(COLUMNS, None, order, ascending, first, limit, connections=None)
    page = page_by_position(catalog, cursor, indexed, query)
    expected = reference_page(rows, None, order, ascending, first, limit)
    assert page["messageId"].to_pylist() == expected
    assert page.column_names == list(COLUMNS)


@pytest.mark.parametrize("ascending", [False, True])
def test_every_unfiltered_page_boundary(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, ascending: bool
) -> None:
    """Each offset and a few limits: partitions skipped whole by their row counts, pages
    starting and ending inside runs of tied timestamps and at partition edges."""
    for first in (*range(0, 12), *range(36, 44), *range(76, 84), 119, 120, 121):
        for limit in (1, 2, 9, 40):
            query = EventQuery(
                COLUMNS, None, "timestamp", ascending, first, limit, connections=None
            )
            got = page_by_position(catalog, cursor, indexed, query)["messageId"].to_pylist()
            assert got == reference_page(rows, None, "timestamp", ascending, first, limit), (
                first,
                limit,
            )


@pytest.mark.parametrize("ascending", [False, True])
def test_every_filtered_page_boundary(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, ascending: bool
) -> None:
    document = _doc("and", ("userId", "is one of", "u1", "u2"))
    predicate = parse_filter(json.dumps(document))
    for first in (0, 1, 2, 5, 13, 29, 30, 31, 47, 63, 64, 65):
        for limit in (1, 3, 17):
            query = EventQuery(
                COLUMNS, predicate, "timestamp", ascending, first, limit, connections=None
            )
            page = page_from_index(catalog, cursor, indexed, query, budget=10_000)
            assert page is not None
            expected = reference_page(rows, document, "timestamp", ascending, first, limit)
            assert page["messageId"].to_pylist() == expected, (first, limit)


def test_no_partitions_and_no_candidates_give_an_empty_page(
    catalog: IndexCatalog, indexed: list, cursor: Any
) -> None:
    nobody = parse_filter(json.dumps(_doc("and", ("userId", "is", "nobody"))))
    for partitions in ([], indexed, indexed[-1:]):  # the last day has no rows
        query = EventQuery(COLUMNS, nobody, "timestamp", False, 0, 10, connections=None)
        page = page_from_index(catalog, cursor, partitions, query, budget=10_000)
        assert page is not None and page.num_rows == 0
        assert page.schema.names == list(COLUMNS)
        unfiltered = EventQuery(COLUMNS, None, "timestamp", False, 0, 10, connections=None)
        page = page_by_position(catalog, cursor, partitions[-1:], unfiltered)
        assert page.num_rows == 0 and page.schema.names == list(COLUMNS)


def _spy_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows each `read_runs` call of `index_pages` reads (the real function)."""
    sizes: list[int] = []
    real = index_pages.read_runs

    def read_runs(chunk: list) -> pa.Table:
        sizes.append(sum(len(rows) for _, _, rows in chunk))
        return real(chunk)

    monkeypatch.setattr(index_pages, "read_runs", read_runs)
    return sizes


def _tied(stamps: list[int], count: int) -> int:
    """How many of `stamps` (candidate timestamps) are the `count` newest and those tied
    with the last of them."""
    newest = sorted(stamps, reverse=True)
    return len(newest) if count >= len(newest) else sum(t >= newest[count - 1] for t in newest)


def test_a_frequent_value_reads_only_its_newest_rows(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`first + limit` candidates, a quarter more and 16 (and rows tied with the last): one
    read, from the newest partition only."""
    sizes = _spy_reads(monkeypatch)
    document = _doc("and", ("anonymousId", "is one of", "anon-a", "anon-b", "x"))  # every row
    stamps = [t for _, _, t in catalog.lookup(cursor, indexed, _conditions(document)) or []]
    for first, limit in [(4, 8), (0, 1), (30, 10)]:
        sizes.clear()
        query = EventQuery(
            COLUMNS, parse_filter(json.dumps(document)), "timestamp", False, first, limit,
            connections=None,
        )  # fmt: skip
        page = page_from_index(catalog, cursor, indexed, query, budget=10_000)
        assert page is not None
        expected = reference_page(rows, document, "timestamp", False, first, limit)
        assert page["messageId"].to_pylist() == expected
        wanted = first + limit
        assert sizes == [_tied(stamps, wanted + wanted // 4 + 16)]


def test_a_rare_match_reads_a_longer_prefix_until_the_page_is_full(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidates that seldom match: each read is 4 times longer than the last (with ties),
    until the page is full or every candidate was read."""
    sizes = _spy_reads(monkeypatch)
    stamps = [t for _, _, t in catalog.lookup(cursor, indexed, _conditions(RARE)) or []]
    for ascending, first, limit in [(False, 0, 5), (False, 2, 6), (False, 0, 40), (True, 0, 4)]:
        sizes.clear()
        query = EventQuery(
            COLUMNS, parse_filter(json.dumps(RARE)), "timestamp", ascending, first, limit,
            connections=None,
        )  # fmt: skip
        page = page_from_index(catalog, cursor, indexed, query, budget=10_000)
        assert page is not None
        expected = reference_page(rows, RARE, "timestamp", ascending, first, limit)
        assert page["messageId"].to_pylist() == expected
        take = first + limit + (first + limit) // 4 + 16
        if ascending:
            stamps = [-t for t in stamps]
        assert sizes == [_tied(stamps, take), _tied(stamps, 4 * take)], (first, limit)


@pytest.mark.parametrize("ascending", [False, True])
def test_an_unfiltered_page_reads_its_rows_and_those_tied_with_its_ends(
    catalog: IndexCatalog,
    indexed: list,
    cursor: Any,
    rows: list,
    monkeypatch: pytest.MonkeyPatch,
    ascending: bool,
) -> None:
    """By position: one read of the page's rows, and every row whose timestamp lies between
    those of its first and last rows (ties with either end)."""
    sizes = _spy_reads(monkeypatch)
    ordered = sorted(rows, key=lambda r: (r["timestamp"], r["messageId"]), reverse=not ascending)
    for first, limit in [(0, 3), (38, 4), (39, 2), (40, 40), (70, 15), (5, 100), (119, 5)]:
        sizes.clear()
        query = EventQuery(COLUMNS, None, "timestamp", ascending, first, limit, connections=None)
        page = page_by_position(catalog, cursor, indexed, query)
        window = ordered[first : first + limit]
        assert page["messageId"].to_pylist() == [r["messageId"] for r in window]
        low, high = sorted((window[0]["timestamp"], window[-1]["timestamp"]))
        assert sizes == [sum(low <= r["timestamp"] <= high for r in rows)], (first, limit)


def test_prefix_takes_whole_runs_then_the_tied_start_of_the_next(
    catalog: IndexCatalog, indexed: list
) -> None:
    newest, older = catalog.open(indexed[1]), catalog.open(indexed[0])
    runs = [(newest, indexed[1], np.arange(5)), (older, indexed[0], np.arange(40))]
    ts = older.order.ts
    tied = int(np.sum(ts == ts[0]))
    assert [len(r) for _, _, r in prefix(runs, 5)] == [5]
    assert [len(r) for _, _, r in prefix(runs, 6)] == [5, tied]
    assert [len(r) for _, _, r in prefix(runs, 5 + tied)] == [5, tied]
    assert [len(r) for _, _, r in prefix(runs, 1000)] == [5, 40]
    assert prefix(runs, 0) == []


def test_budget_bounds_the_rows_a_page_reads(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list, places: list
) -> None:
    """Ordered otherwise than by timestamp, every candidate is read: a budget of exactly
    their number serves the page, one less leaves it to the scans."""
    document = _doc("and", ("userId", "is", "u3"))
    total = len(_matching(rows, places, document))
    query = EventQuery(
        COLUMNS, parse_filter(json.dumps(document)), "userId", False, 0, 5, connections=None
    )
    page = page_from_index(catalog, cursor, indexed, query, budget=total)
    assert page is not None
    assert page["messageId"].to_pylist() == reference_page(rows, document, "userId", False, 0, 5)
    assert page_from_index(catalog, cursor, indexed, query, budget=total - 1) is None


def test_a_page_whose_matches_are_too_rare_for_the_budget_is_left_to_the_scans(
    catalog: IndexCatalog, indexed: list, cursor: Any, rows: list
) -> None:
    """No match among the first candidates read: at that rate the page needs more than the
    budget, so the index gives up (None)."""
    nothing = _doc("and", ("anonymousId", "contains", "a"), ("messageId", "is", "nobody"))
    query = EventQuery(
        COLUMNS, parse_filter(json.dumps(nothing)), "timestamp", False, 0, 3, connections=None
    )
    assert page_from_index(catalog, cursor, indexed, query, budget=10_000) is None
    past = replace(query, first=5)  # nothing past the offset counts as no match
    assert page_from_index(catalog, cursor, indexed, past, budget=10_000) is None
    # 40 wanted, at most 11 matches among the first 67 candidates: over 200 rows to read.
    forty = EventQuery(
        COLUMNS, parse_filter(json.dumps(RARE)), "timestamp", False, 0, 40, connections=None
    )
    assert page_from_index(catalog, cursor, indexed, forty, budget=200) is None
    assert page_from_index(catalog, cursor, indexed, forty, budget=10_000) is not None
    query = EventQuery(
        COLUMNS, parse_filter(json.dumps(RARE)), "timestamp", False, 0, 3, connections=None
    )
    page = page_from_index(catalog, cursor, indexed, query, budget=1000)
    assert page is not None
    assert page["messageId"].to_pylist() == reference_page(rows, RARE, "timestamp", False, 0, 3)
    assert page_from_index(catalog, cursor, indexed, query, budget=18) is None  # reads 19


def test_tie_bounds_widen_to_every_tied_row() -> None:
    ts = np.array([90, 80, 80, 80, 70, 60, 60, 50])  # descending
    assert tie_bounds(ts, 0, 1) == (0, 1)
    assert tie_bounds(ts, 2, 3) == (1, 4)
    assert tie_bounds(ts, 3, 6) == (1, 7)
    assert tie_bounds(ts, 4, 5) == (4, 5)
    assert tie_bounds(ts, 7, 8) == (7, 8)
    assert tie_bounds(ts, 0, 8) == (0, 8)


def test_by_file_groups_candidate_rows_by_file() -> None:
    found = [("b", 3, 1), ("a", 9, 5), ("b", 1, 7), ("a", 2, 2)]
    assert by_file(found) == {"a": [2, 9], "b": [1, 3]}
    assert by_file([]) == {}


def test_current_refuses_a_missing_stale_or_damaged_index(lake: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    catalog = IndexCatalog(copy)
    partitions = {p.name: p for p in list_partitions(copy, "events")}
    day = partitions["date=2025-10-01"]
    current = catalog.current(day.name, day.files)
    assert current == IndexedPartition(current.index_file, day.files) and current.files
    assert catalog.current("date=2025-10-03", ()) is None  # a missing day: no index folder
    assert catalog.current(day.name, day.files[:1]) is None  # other files
    assert catalog.current(day.name, (*day.files, day.files[0] + ".gone")) is None
    # A damaged value table (of another partition, not opened before) is not used.
    other = partitions["date=2025-10-02"]
    [value_table] = (copy / INDEX / "events" / other.name).glob("index-*.arrow")
    value_table.write_bytes(b"not arrow")
    assert catalog.current(other.name, other.files) is None


def test_an_index_without_its_manifest_is_not_used(lake: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    day = next(p for p in list_partitions(copy, "events") if p.name == "date=2025-10-02")
    [value_table] = (copy / INDEX / "events" / day.name).glob("index-*.arrow")
    table = pa.ipc.open_file(pa.memory_map(str(value_table))).read_all()
    write_arrow(table.replace_schema_metadata(None), value_table)  # the rows, no manifest
    assert IndexCatalog(copy).current(day.name, day.files) is None


def test_the_catalog_keeps_one_open_index_per_partition(lake: Path, tmp_path: Path) -> None:
    """An index is opened once and kept while it is current; a rebuilt one replaces it."""
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    catalog = IndexCatalog(copy)
    days = [p for p in list_partitions(copy, "events") if p.files]
    first, second = (catalog.current(p.name, p.files) for p in days[:2])
    assert first is not None and second is not None
    opened = catalog.open(first)
    assert opened.index_file == first.index_file
    other = catalog.open(second)
    assert other is not opened
    assert catalog.open(first) is opened and catalog.open(second) is other
    assert catalog.current(days[0].name, days[0].files) == first
    assert catalog.open(first) is opened
    build_partition_index(copy, str(copy / "events" / days[0].name))  # deletes the old files
    rebuilt = catalog.current(days[0].name, days[0].files)
    assert rebuilt is not None and rebuilt.index_file != first.index_file
    replaced = catalog.open(rebuilt)
    assert replaced is not opened and replaced.index_file == rebuilt.index_file
    assert catalog.open(rebuilt) is replaced and catalog.open(second) is other
    with pytest.raises(FileNotFoundError):
        catalog.open(first)  # gone: not served from the cache
