"""Compaction while the read API serves (issue #12, item 11): no request fails because a
writer replaced a partition's files."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import pytest
from api_support import API_KEY, make_event, running_server, write_lake

from eventpipe.api.app import create_app
from eventpipe.api.query import MAX_ATTEMPTS, EventQuery, LakeReader
from eventpipe.io.compaction import compact_lake
from eventpipe.schemas.lake_layout import Partition, list_partitions
from eventpipe.serving.index_build import build_partition_index, index_lake

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
DAYS = 10
ROUNDS = 4
CLIENTS = 16
REQUESTS = 300
MAX_REQUESTS = 3_000  # requests go on while the writer works, up to this many


def _stamp(day: int, second: int) -> dt.datetime:
    return dt.datetime(2025, 10, 1 + day, tzinfo=dt.UTC) + dt.timedelta(seconds=second)


def _new_files(round_: int, per_day: int = 200) -> dict[str, list[dict]]:
    """Two new files for every day partition (as an import leaves them), by file name."""
    return {
        f"part-{round_}-{part}.parquet": [
            make_event(
                messageId=f"r{round_}-{part}-{day}-{i}",
                timestamp=_stamp(day, round_ * 10_000 + part * 1_000 + i),
                properties={"plan": "pro" if i % 2 else "free", "n": i},
                userId=f"u{i % 7}",
            )
            for day in range(DAYS)
            for i in range(per_day)
        ]
        for part in range(2)
    }


def test_files_replaced_twice_during_one_request_are_read_again(tmp_path: Path) -> None:
    """Two compactions land while one request reads: the first listing and the second are
    both gone by the time they are read (the old code retried once, then failed)."""
    folder = tmp_path / "events" / "date=2025-10-01"
    listings = []
    for version in range(3):
        for old in folder.glob("*.parquet") if folder.exists() else []:
            old.unlink()
        event = make_event(messageId=f"v{version}", timestamp=_stamp(0, 0))
        write_lake(tmp_path, [event], file_name=f"part-compact-{version}.parquet")
        listings.append(list_partitions(tmp_path, "events"))
    reader = LakeReader(tmp_path)
    stale = iter([listings[0], listings[1], listings[1]])
    reader.partitions = lambda: next(stale, None) or list_partitions(reader.lake, "events")
    page = reader.list_events(EventQuery(columns=("messageId",), connections=None))
    assert page["messageId"].to_pylist() == ["v2"]


def test_an_index_replaced_during_a_request_is_found_anew(tmp_path: Path) -> None:
    """`compact` indexes a partition whose files stay the same: a request that found the
    old index (now deleted) while another request opened the new one reads again."""
    rows = [make_event(messageId=f"m{i}", timestamp=_stamp(0, i)) for i in range(5)]
    write_lake(tmp_path, rows)
    folder = tmp_path / "events" / "date=2025-10-01"
    build_partition_index(tmp_path, str(folder))
    reader = LakeReader(tmp_path)
    assert reader.indexes is not None
    files = reader.partitions()[0].files
    stale = reader.indexes.current("date=2025-10-01", files)
    assert stale is not None
    build_partition_index(tmp_path, str(folder))  # the old index files are deleted
    assert reader.indexes.current("date=2025-10-01", files) != stale  # another request
    current = reader.indexes.current
    found = iter([stale])
    reader.indexes.current = lambda name, listed: next(found, None) or current(name, listed)
    page = reader.list_events(EventQuery(columns=("messageId",), connections=None))
    assert page["messageId"].to_pylist() == ["m4", "m3", "m2", "m1", "m0"]


def test_a_request_gives_up_after_max_attempts(tmp_path: Path) -> None:
    """Files that vanish on every attempt (listed anew each time) end in the error after
    MAX_ATTEMPTS, not in an endless loop."""
    write_lake(tmp_path, [make_event(timestamp=_stamp(0, 0))])
    folder = tmp_path / "events" / "date=2025-10-01"
    listed = iter(range(10 * MAX_ATTEMPTS))
    reader = LakeReader(tmp_path)
    reader.partitions = lambda: [
        Partition(dt.date(2025, 10, 1), (str(folder / f"gone-{next(listed)}.parquet"),))
    ]
    with pytest.raises(duckdb.IOException):
        reader.list_events(EventQuery(connections=None))
    assert next(listed) == 2 * MAX_ATTEMPTS - 1  # a listing per attempt, and one per retry


@pytest.mark.slow
def test_compaction_and_indexing_while_serving_fail_no_request(tmp_path: Path) -> None:
    """ROUNDS times: new files land in every partition, then `compact` rewrites each
    partition and rebuilds its serving index, while CLIENTS clients send requests of every shape
    on loopback (at least REQUESTS, and on until the writer is done). Every request gets a
    200 and only rows the lake holds."""
    lake = tmp_path
    known: set[str] = set()  # every messageId written (added before its file appears)

    def add_files(round_: int) -> None:
        for name, rows in _new_files(round_).items():
            known.update(r["messageId"] for r in rows)
            write_lake(lake, rows, file_name=name)

    add_files(0)
    compact_lake(str(lake), tables=("events",))
    index_lake(str(lake))
    shapes = [
        {"limit": "50"},
        {"first": "300", "limit": "100"},
        {
            "filter": '{"logical":"and","conditions":[{"property":"properties.plan",'
            '"operator":"is","values":["pro"]}]}'
        },
        {
            "filter": '{"logical":"and","conditions":[{"property":"userId",'
            '"operator":"is","values":["u3"]}]}',
            "limit": "20",
        },
        {"order": "userId", "limit": "30"},
        {
            "filter": '{"logical":"or","conditions":[{"property":"properties.n",'
            '"operator":"is greater than","values":["150"]}]}'
        },
    ]
    failures: list[str] = []
    written = threading.Event()

    def write() -> None:
        for round_ in range(1, ROUNDS + 1):
            add_files(round_)
            compact_lake(str(lake), tables=("events",))
            index_lake(str(lake))
        written.set()

    with (
        running_server(create_app(str(lake), [API_KEY])) as url,
        httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client,
    ):

        def one(i: int) -> None:
            try:
                response = client.get("/v1/events", params=shapes[i % len(shapes)])
            except httpx.TransportError as exc:
                failures.append(f"request {i}: {exc!r}")
                return
            if response.status_code != 200:
                failures.append(f"request {i}: {response.status_code} {response.text[:300]}")
                return
            ids = {e["messageId"] for e in response.json()["events"]}
            unknown = ids - known
            if unknown:
                failures.append(f"request {i}: rows the lake never held: {sorted(unknown)[:3]}")

        numbers = iter(range(MAX_REQUESTS))
        sent: list[int] = []

        def client_loop() -> None:
            for i in numbers:
                if written.is_set() and i >= REQUESTS:
                    return
                one(i)
                sent.append(i)

        writer = threading.Thread(target=write)
        writer.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            for future in [pool.submit(client_loop) for _ in range(CLIENTS)]:
                future.result()
        writer.join()
    assert written.is_set()
    assert failures == []
    assert len(sent) >= REQUESTS
