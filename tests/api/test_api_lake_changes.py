"""The server follows the lake: new partitions and files, ignored temporaries, empty lakes."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_support import API_KEY, make_event, running_server, write_lake

from eventpipe.api.app import create_app
from eventpipe.api.query import EventQuery, LakeReader
from eventpipe.schemas.lake_layout import list_partitions

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _day(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2025, 10, day, hour, tzinfo=dt.UTC)


@pytest.fixture()
def lake_server(tmp_path: Path) -> Iterator[tuple[Path, httpx.Client]]:
    with (
        running_server(create_app(str(tmp_path), [API_KEY])) as url,
        httpx.Client(base_url=url, headers=HEADERS, timeout=30) as client,
    ):
        yield tmp_path, client


def _ids(client: httpx.Client, **params) -> list[str]:
    response = client.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    return [e["messageId"] for e in response.json()["events"]]


def test_empty_lake_then_new_partitions_without_restart(
    lake_server: tuple[Path, httpx.Client],
) -> None:
    lake, client = lake_server
    assert _ids(client) == []  # no events/ folder at all
    (lake / "events").mkdir()
    assert _ids(client) == []  # no partition yet
    write_lake(lake, [make_event(messageId="a", timestamp=_day(1))])
    assert _ids(client) == ["a"]
    write_lake(lake, [make_event(messageId="b", timestamp=_day(2))])
    assert _ids(client) == ["b", "a"]
    write_lake(lake, [make_event(messageId="c", timestamp=_day(2, 13))], file_name="part-1.parquet")
    assert _ids(client) == ["c", "b", "a"]


def test_temporary_and_staging_files_are_ignored(lake_server: tuple[Path, httpx.Client]) -> None:
    lake, client = lake_server
    write_lake(lake, [make_event(messageId="a", timestamp=_day(1))])
    partition = lake / "events" / "date=2025-10-01"
    (partition / "part-9.parquet.tmp").write_bytes(b"half a file")
    (partition / ".part-8.parquet").write_bytes(b"hidden")
    (partition / "_SUCCESS").write_bytes(b"")
    staging = lake / "events" / "_staging" / "date=2025-10-02"
    staging.mkdir(parents=True)
    (staging / "part-0.parquet").write_bytes(b"not yet")
    (lake / "events" / "date=2025-10-03").mkdir()  # empty partition
    (lake / "events" / "date=nonsense").mkdir()
    (lake / "events" / "notes.txt").write_text("x")
    assert _ids(client) == ["a"]
    assert [p.day for p in list_partitions(lake, "events")] == [dt.date(2025, 10, 1)]


def test_partition_pruning_by_timestamp(lake_server: tuple[Path, httpx.Client]) -> None:
    lake, client = lake_server
    write_lake(lake, [make_event(messageId=f"m{d}", timestamp=_day(d)) for d in range(1, 6)])
    flt = (
        '{"logical":"and","conditions":[{"property":"timestamp","operator":"is between",'
        '"values":["2025-10-02T00:00:00Z","2025-10-04T12:00:00Z"]}]}'
    )
    assert _ids(client, filter=flt) == ["m4", "m3", "m2"]
    assert _ids(client, filter=flt, ascending="true") == ["m2", "m3", "m4"]
    assert _ids(client, filter=flt, first=1, limit=1) == ["m3"]


def test_concurrent_requests(lake_server: tuple[Path, httpx.Client]) -> None:
    lake, client = lake_server
    rows = [
        make_event(messageId=f"m{i:03d}", timestamp=_day(1 + i % 20, i % 24), userId=f"u{i % 7}")
        for i in range(300)
    ]
    write_lake(lake, rows)
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        params = {
            "limit": 10,
            "first": i % 50,
            "filter": '{"logical":"and","conditions":[{"property":"userId","operator":'
            f'"is","values":["u{i % 7}"]}}]}}',
        }
        response = client.get("/v1/events", params=params)
        if response.status_code != 200 or len(response.json()["events"]) > 10:
            with lock:
                errors.append(response.text)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(200)))
    assert errors == []


def test_a_partition_swapped_during_a_request_is_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_lake(tmp_path, [make_event(messageId="old", timestamp=_day(1))])
    reader = LakeReader(tmp_path)
    stale = reader.partitions()
    (tmp_path / "events" / "date=2025-10-01" / "part-0.parquet").unlink()
    write_lake(
        tmp_path, [make_event(messageId="new", timestamp=_day(1))], file_name="part-1.parquet"
    )
    listings = iter([stale])
    reader.partitions = lambda: next(listings, None) or list_partitions(reader.lake, "events")
    assert reader.list_events(EventQuery(columns=("messageId",), connections=None))[
        "messageId"
    ].to_pylist() == ["new"]
