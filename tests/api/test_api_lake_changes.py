"""The server follows the lake: new partitions and files, ignored temporaries, empty lakes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_support import API_KEY, make_event, running_server, write_lake

from eventpipe.api.app import create_app
from eventpipe.api.query import EventQuery, LakeReader
from eventpipe.io import lake as L
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate
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


def test_concurrent_requests_get_the_single_threaded_answers(
    lake_server: tuple[Path, httpx.Client],
) -> None:
    """200 requests from 8 threads: each response body equals the one the same request
    got alone, before (no status- or length-only check)."""
    lake, client = lake_server
    rows = [
        make_event(
            messageId=f"m{i:03d}",
            timestamp=_day(1 + i % 20, i % 24),
            userId=f"u{i % 7}",
            properties={"n": i, "tags": ["x"] * (i % 3)},
        )
        for i in range(300)
    ]
    write_lake(lake, rows)

    def params(i: int) -> dict[str, str | int]:
        condition = {"property": "userId", "operator": "is", "values": [f"u{i % 7}"]}
        return {
            "limit": 1 + i % 10,
            "first": i % 50,
            "ascending": "true" if i % 3 == 0 else "false",
            "filter": json.dumps({"logical": "and", "conditions": [condition]}),
        }

    def answer(i: int) -> tuple[int, bytes]:
        response = client.get("/v1/events", params=params(i))
        return response.status_code, response.content

    alone = [answer(i) for i in range(200)]
    assert all(status == 200 for status, _ in alone)
    assert sum(len(json.loads(body)["events"]) for _, body in alone) > 200  # pages not empty
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(answer, range(200)))
    assert [i for i in range(200) if together[i] != alone[i]] == []


def test_a_stale_listing_is_listed_again(tmp_path: Path) -> None:
    """The retry of a request whose listed file is gone (the unit of what the reprocess
    test below exercises for real)."""
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


@pytest.fixture(scope="module")
def imported_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake imported without enrichment (reprocessing it enriches every partition)."""
    root = tmp_path_factory.mktemp("swap")
    generate(root / "corpus", events=1200, seed=5, days=4, units_per_file=600)
    args = ["import", str(root / "corpus" / "*"), "--lake", str(root / "lake"), "--no-enrich"]
    assert main(args) == 0
    return root / "lake"


def _day_answers(client: httpx.Client, days: list[str]) -> dict[str, bytes]:
    """Each day's events (one partition a request), as the response bodies."""
    answers = {}
    for day in days:
        condition = {"property": "timestamp", "operator": "is between", "values": [
            f"{day}T00:00:00Z", f"{day}T23:59:59.999Z"]}  # fmt: skip
        document = json.dumps({"logical": "and", "conditions": [condition]})
        response = client.get("/v1/events", params={"filter": document, "limit": 1000})
        assert response.status_code == 200, response.text
        answers[day] = response.content
    return answers


def test_answers_during_a_real_reprocess_are_each_the_before_or_the_after_answer(
    imported_lake: Path, tmp_path: Path
) -> None:
    """`eventpipe reprocess` swaps the partitions one at a time while the server answers:
    paused after its first swap (the test hook), then running to its end, every answer of
    a day is that day's answer before the job or after it, never a mix or an error; the
    pause is a mixed moment (some days swapped, others not)."""
    lake = tmp_path / "lake"
    shutil.copytree(imported_lake, lake)
    days = sorted(p.name.removeprefix("date=") for p in (lake / "events").glob("date=*"))
    assert len(days) >= 3
    marker = tmp_path / "paused"
    seen: dict[str, set[bytes]] = {day: set() for day in days}
    with (
        running_server(create_app(str(lake), [API_KEY])) as url,
        httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client,
    ):
        before = _day_answers(client, days)
        job = subprocess.Popen(
            [sys.executable, "-m", "eventpipe.jobs.cli", "reprocess", "--lake", str(lake),
             "--from", days[0], "--to", days[-1]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, L.PAUSE_AT: "commit-swapped-first", L.PAUSE_FILE: str(marker)},
        )  # fmt: skip
        try:
            while not marker.exists():
                assert job.poll() is None, "reprocess ended before its first swap"
                for day, body in _day_answers(client, days).items():
                    seen[day].add(body)
            paused = _day_answers(client, days)
            marker.unlink()  # the job goes on: the other swaps while requests are answered
            while job.poll() is None:
                for day, body in _day_answers(client, days).items():
                    seen[day].add(body)
        finally:
            if job.poll() is None:
                job.kill()
            job.wait()
        assert job.returncode == 0
        after = _day_answers(client, days)
    assert all(before[day] != after[day] for day in days)  # the job changed every day
    for day in days:
        assert seen[day] | {paused[day]} <= {before[day], after[day]}, day
    swapped = [day for day in days if paused[day] == after[day]]
    assert 0 < len(swapped) < len(days), swapped  # the pause was a mixed moment
