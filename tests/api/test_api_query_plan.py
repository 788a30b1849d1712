"""The query plan (partition batches, offsets, two-step row fetch) returns the page an
independent reference computes (rows read with pyarrow, filtered and sorted in Python:
reference_query), for many shapes of request."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from pathlib import Path

import pytest
from api_support import make_event, write_lake
from reference_query import lake_rows, reference_page

from eventpipe.api.filters import parse_filter
from eventpipe.api.query import EventQuery, LakeReader
from eventpipe.serving import row_store
from eventpipe.serving.index_build import index_lake

COLUMNS = ("messageId", "userId", "timestamp", "event")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(11)
    base = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    rows = [
        make_event(
            messageId=f"m{i:05d}",
            timestamp=base + dt.timedelta(seconds=rng.randrange(6 * 86_400) // 7 * 7),
            userId=rng.choice([None, "u1", "u2", "u3", "u4"]),
            event=rng.choice(["A", "B", "C"]),
            properties={"n": rng.randrange(10)},
        )
        for i in range(6000)
    ]
    root = tmp_path_factory.mktemp("plan-lake")
    write_lake(root, rows[:3000], row_group_size=128)
    write_lake(root, rows[3000:], file_name="part-1.parquet", row_group_size=128)
    return root


@pytest.fixture(scope="module")
def rows(lake: Path) -> list[dict]:
    """The lake's rows for the independent reference (reference_query)."""
    return lake_rows(lake)


FILTERS = [
    None,
    [("userId", "is", ["u2"])],
    [("event", "is one of", ["A", "C"]), ("timestamp", "is after", ["2025-10-03T05:00:00Z"])],
    [("properties.n", "is greater than", ["6"])],
    [("userId", "is null")],
    [("timestamp", "is between", ["2025-10-02", "2025-10-04"])],
    [("userId", "is", ["nobody"])],
]


def _document(conditions: list[tuple] | None) -> dict | None:
    """The filter document of (property, operator[, values]) conditions joined by and."""
    if not conditions:
        return None
    return {
        "logical": "and",
        "conditions": [
            {"property": c[0], "operator": c[1], "values": c[2] if len(c) > 2 else []}
            for c in conditions
        ],
    }


@pytest.fixture(scope="module")
def indexed_lake(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same lake with a serving index (8-row row-store blocks)."""
    root = tmp_path_factory.mktemp("indexed-plan-lake")
    shutil.copytree(lake / "events", root / "events")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(row_store, "BLOCK_ROWS", 8)
        assert index_lake(str(root)).indexed == 6
    return root


@pytest.mark.parametrize(("dense_span", "indexed"), [(0, False), (10**9, False), (0, True)])
@pytest.mark.parametrize("conditions", FILTERS)
def test_plan_matches_the_independent_reference(
    lake: Path, indexed_lake: Path, rows: list[dict], dense_span: int, indexed: bool, conditions
) -> None:
    """Also over the indexed lake: unfiltered pages by timestamp are found by position in
    the row order, json-filtered ones from the index."""
    reader = LakeReader(indexed_lake if indexed else lake, dense_span=dense_span)
    document = _document(conditions)
    predicate = parse_filter(json.dumps(document)) if document else None
    for order in ("timestamp", "userId", "messageId"):
        for ascending in (False, True):
            for first, limit in [(0, 100), (0, 1000), (950, 100), (2999, 7), (5990, 50)]:
                query = EventQuery(
                    COLUMNS, predicate, order, ascending, first, limit, connections=None
                )
                got = reader.list_events(query)
                assert got.column_names == list(COLUMNS)
                expected = reference_page(rows, document, order, ascending, first, limit)
                assert got["messageId"].to_pylist() == expected, (
                    order,
                    ascending,
                    first,
                    limit,
                )


@pytest.mark.parametrize("indexed", [False, True])
@pytest.mark.parametrize("conditions", FILTERS)
def test_count_matches_the_independent_reference(
    lake: Path, indexed_lake: Path, rows: list[dict], indexed: bool, conditions
) -> None:
    reader = LakeReader(indexed_lake if indexed else lake)
    document = _document(conditions)
    predicate = parse_filter(json.dumps(document)) if document else None
    query = EventQuery(COLUMNS, predicate, "timestamp", False, 0, 1, connections=None)
    expected = reference_page(rows, document, "messageId", True, 0, len(rows))
    assert reader.count_events(query) == len(expected)


def test_count_is_scoped_to_the_connections(lake: Path, rows: list[dict]) -> None:
    reader = LakeReader(lake)
    everyone = EventQuery(COLUMNS, None, "timestamp", False, 0, 1, connections=None)
    connection = rows[0]["connectionId"]
    assert reader.count_events(everyone) == len(rows)
    mine = EventQuery(COLUMNS, None, "timestamp", False, 0, 1, connections=frozenset({connection}))
    assert reader.count_events(mine) == sum(r["connectionId"] == connection for r in rows)
    other = EventQuery(COLUMNS, None, "timestamp", False, 0, 1, connections=frozenset({-5}))
    assert reader.count_events(other) == 0
    nobody = EventQuery(COLUMNS, None, "timestamp", False, 0, 1, connections=frozenset())
    assert reader.count_events(nobody) == 0
