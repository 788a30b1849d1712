"""The query core's keyset pages (`EventQuery.seek`), added for seed 002: paging by seek
gives every row once in the order (timestamp, messageId, connectionId), ascending and
descending, with ties on timestamp and on (timestamp, messageId) across connections, on
the lake with and without its serving index and on BigQuery (the emulator)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import make_event, write_lake
from bq_emulator import bigquery_table

from eventpipe.api.bigquery_backend import BigQueryReader
from eventpipe.api.filters import compile_filter
from eventpipe.api.query import LakeReader
from eventpipe.serving.event_query import EventQuery, Seek
from eventpipe.serving.index_build import index_lake

BASE = dt.datetime(2025, 10, 1, 22, tzinfo=dt.UTC)


def tied_rows() -> list[dict[str, Any]]:
    """120 events on 12 timestamps (over three days), 40 messageIds shared by 3
    connections: many ties on timestamp, and on (timestamp, messageId)."""
    rng = random.Random(5)
    keys = [(c, f"m{m:02d}") for c in (3, 1, 2) for m in range(40)]
    rng.shuffle(keys)
    stamps = [BASE + dt.timedelta(hours=5 * i, microseconds=i % 2) for i in range(12)]
    return [
        make_event(connectionId=c, messageId=m, timestamp=rng.choice(stamps), userId=f"u{i % 4}")
        for i, (c, m) in enumerate(keys)
    ]


def key(row: dict[str, Any]) -> tuple:
    return (row["timestamp"], row["messageId"], row["connectionId"])


ROWS = tied_rows()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory):
    """A lake whose last day has no serving index (its pages are scanned)."""
    root = write_lake(tmp_path_factory.mktemp("seek"), ROWS)
    days = sorted({r["timestamp"].date() for r in ROWS})
    index_lake(str(root), first=days[0], last=days[-2])
    return root


@pytest.fixture(scope="module")
def indexed_lake(tmp_path_factory: pytest.TempPathFactory):
    """A lake indexed in full: every page is read through the index."""
    root = write_lake(tmp_path_factory.mktemp("seek-indexed"), ROWS)
    index_lake(str(root))
    return root


@pytest.fixture
def index_pages(monkeypatch) -> list[int]:
    """How many pages the lake reader served through the serving index (the real function,
    counted)."""
    import eventpipe.api.query as lake_query

    served: list[int] = []
    real = lake_query.page_from_index

    def counted(*args: Any, **kwargs: Any):
        page = real(*args, **kwargs)
        served.append(page is not None)
        return page

    monkeypatch.setattr(lake_query, "page_from_index", counted)
    return served


@pytest.fixture(scope="module")
def bigquery_reader(lake, bq_client, bq_endpoint) -> Iterator[BigQueryReader]:
    with bigquery_table(bq_client, bq_endpoint, lake) as table:
        yield BigQueryReader(table, bq_endpoint)


def page_by_seek(reader: Any, ascending: bool, size: int, **query: Any) -> list[tuple]:
    """Every row, `size` at a time, each page seeking past the last row of the one before."""
    seen: list[tuple] = []
    seek = Seek(
        dt.datetime(1, 1, 1, tzinfo=dt.UTC) if ascending else dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
    )
    while True:
        page = reader.list_events(
            EventQuery(connections=query.get("connections"), predicate=query.get("predicate"),
                       columns=("timestamp", "messageId", "connectionId"),
                       ascending=ascending, limit=size, seek=seek)
        ).to_pylist()  # fmt: skip
        seen += [key(r) for r in page]
        if len(page) < size:
            return seen
        last = page[-1]
        seek = Seek(last["timestamp"], last["messageId"], last["connectionId"])


@pytest.mark.parametrize("size", [1, 7, 64])
@pytest.mark.parametrize("ascending", [True, False])
@pytest.mark.parametrize("index", ["full", "partial", "none"])
def test_seek_pages_give_every_row_once_in_key_order(
    lake, indexed_lake, index_pages, index, ascending, size
):
    reader = LakeReader(indexed_lake if index == "full" else lake, use_index=index != "none")
    expected = sorted(map(key, ROWS), reverse=not ascending)
    assert page_by_seek(reader, ascending, size) == expected
    if index == "full":
        assert index_pages and all(index_pages)


@pytest.mark.parametrize("ascending", [True, False])
def test_seek_pages_with_a_workspace_and_an_indexed_filter(indexed_lake, index_pages, ascending):
    reader = LakeReader(indexed_lake)
    predicate = compile_filter(
        {"logical": "and", "conditions": [{"property": "userId", "operator": "is one of",
                                           "values": ["u1", "u2"]}]})  # fmt: skip
    kept = [r for r in ROWS if r["connectionId"] in (1, 3) and r["userId"] in ("u1", "u2")]
    got = page_by_seek(reader, ascending, 5, connections=frozenset({1, 3}), predicate=predicate)
    assert got == sorted(map(key, kept), reverse=not ascending)
    assert index_pages and all(index_pages)


@pytest.mark.parametrize("indexed", [True, False])
def test_a_seek_without_a_message_id_starts_at_its_timestamp(lake, indexed_lake, indexed):
    reader = LakeReader(indexed_lake if indexed else lake)
    middle = sorted(ROWS, key=key)[60]["timestamp"]
    for ascending in (True, False):
        page = reader.list_events(
            EventQuery(connections=None, columns=("timestamp", "messageId", "connectionId"),
                       ascending=ascending, limit=1000, seek=Seek(middle))
        ).to_pylist()  # fmt: skip
        expected = [key(r) for r in ROWS if (r["timestamp"] >= middle) == ascending
                    or r["timestamp"] == middle]  # fmt: skip
        assert [key(r) for r in page] == sorted(expected, reverse=not ascending)


@pytest.mark.parametrize("ascending", [True, False])
def test_bigquery_pages_by_seek_as_the_lake_does(lake, bigquery_reader, ascending):
    expected = page_by_seek(LakeReader(lake), ascending, 9)
    assert (
        page_by_seek(bigquery_reader, ascending, 9)
        == expected
        == sorted(map(key, ROWS), reverse=not ascending)
    )


def test_a_seek_needs_the_timestamp_order_and_a_whole_key():
    with pytest.raises(ValueError):
        EventQuery(connections=None, order="userId", seek=Seek(BASE))
    with pytest.raises(ValueError):
        Seek(BASE, "m01")
