"""A keyset page (seek) looks at the serving index of the partitions it can reach only
(from the seek on, until its budget of rows), not at every partition after the seek."""

from __future__ import annotations

import datetime as dt

import pytest
from api_support import make_event, write_lake

from eventpipe.api.query import LakeReader
from eventpipe.serving.event_query import EventQuery, Seek
from eventpipe.serving.index_build import index_lake
from eventpipe.serving.index_lookup import IndexCatalog

BASE = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
ROWS = [
    make_event(connectionId=1, messageId=f"m{i:03d}", timestamp=BASE + dt.timedelta(hours=2 * i))
    for i in range(60)  # 12 a day over 5 days
]


@pytest.fixture(scope="module")
def five_days(tmp_path_factory: pytest.TempPathFactory):
    """Five days of 12 events, each day with its serving index."""
    root = write_lake(tmp_path_factory.mktemp("reach"), ROWS)
    index_lake(str(root), first=BASE.date())
    return root


@pytest.fixture
def looked_at(monkeypatch) -> list[str]:
    """The partitions whose index `IndexCatalog.current` was asked for (the real one)."""
    names: list[str] = []
    real = IndexCatalog.current
    monkeypatch.setattr(
        IndexCatalog,
        "current",
        lambda self, name, files: names.append(name) or real(self, name, files),
    )
    return names


def page(lake, ascending: bool, seek: Seek, limit: int) -> list[str]:
    reader = LakeReader(lake, row_store_rows=0)  # the budget: 8 rows per event asked for
    query = EventQuery(
        connections=None, columns=("messageId",), ascending=ascending, limit=limit, seek=seek
    )
    return [r["messageId"] for r in reader.list_events(query).to_pylist()]


@pytest.mark.parametrize("ascending", [True, False])
def test_a_seek_page_looks_at_the_partitions_it_can_reach(five_days, looked_at, ascending):
    if ascending:  # day 2 from its 4th row on: 9 rows there, 12 on day 3 (> 8 * 2)
        seek, expected = Seek(BASE + dt.timedelta(hours=2 * 14), "m014", 1), ["m015", "m016"]
    else:  # day 4 backwards from its 5th row: 5 rows there, 12 on day 3
        seek, expected = Seek(BASE + dt.timedelta(hours=2 * 40), "m040", 1), ["m039", "m038"]
    assert page(five_days, ascending, seek, 2) == expected
    assert sorted(set(looked_at)) == (
        ["date=2025-10-02", "date=2025-10-03"]
        if ascending
        else ["date=2025-10-03", "date=2025-10-04"]
    )


def test_a_page_beyond_the_reach_reads_on(five_days):
    every = page(five_days, True, Seek(BASE), 60)
    assert every == [f"m{i:03d}" for i in range(60)]  # budget 480 rows: every partition
