"""A damaged Parquet file in the lake (truncated, or garbage bytes): the read API answers
a JSON 503 naming its partition and logs it while the other partitions stay readable;
`eventpipe compact` and `eventpipe identity` fail with a message naming the file."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from api_support import API_KEY, make_event, running_server, write_lake

from eventpipe.api.app import create_app
from eventpipe.jobs.cli import main

DAMAGED = "date=2025-10-02/part-0.parquet"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not parquet\xff" * 64)


DAMAGES: dict[str, Callable[[Path], None]] = {"truncated": _truncate, "garbage": _garbage}


def _day(day: int) -> dt.datetime:
    return dt.datetime(2025, 10, day, 12, tzinfo=dt.UTC)


def _lake(root: Path, damage: Callable[[Path], None]) -> Path:
    """Three days (m1, m2, m3), the file of 2025-10-02 damaged."""
    write_lake(
        root, [make_event(messageId=f"m{d}", userId="u", timestamp=_day(d)) for d in (1, 2, 3)]
    )
    damage(root / "events" / DAMAGED)
    return root


def _timestamps(operator: str, value: str) -> str:
    condition = {"property": "timestamp", "operator": operator, "values": [value]}
    return json.dumps({"logical": "and", "conditions": [condition]})


@pytest.mark.parametrize("damage", DAMAGES)
def test_the_api_answers_503_naming_the_partition_and_serves_the_others(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    lake = _lake(tmp_path, DAMAGES[damage])
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        caplog.at_level(logging.ERROR, logger="eventpipe.api.query"),
        running_server(create_app(str(lake), [API_KEY])) as url,
        httpx.Client(base_url=url, headers=headers, timeout=30) as client,
    ):
        for params in ({}, {"filter": _timestamps("is after", "2025-10-01T00:00:00Z")}):
            response = client.get("/v1/events", params=params)
            assert response.status_code == 503, response.text
            message = response.json()["error"]["message"]
            assert "partition date=2025-10-02 has a damaged file part-0.parquet" in message
            assert str(tmp_path) not in message  # no server path in the answer
        # The server still works, and the other partitions are read.
        after = client.get("/v1/events", params={"filter": _timestamps("is after", "2025-10-03")})
        before = client.get(
            "/v1/events", params={"filter": _timestamps("is before", "2025-10-01T23:00:00Z")}
        )
        assert [e["messageId"] for e in after.json()["events"]] == ["m3"]
        assert [e["messageId"] for e in before.json()["events"]] == ["m1"]
        # Repaired, the partition is read again.
        (lake / "events" / DAMAGED).unlink()
        write_lake(lake, [make_event(messageId="m2", userId="u", timestamp=_day(2))])
        every = client.get("/v1/events")
        assert [e["messageId"] for e in every.json()["events"]] == ["m3", "m2", "m1"]
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 2, logged
    assert all("partition date=2025-10-02 has a damaged file part-0.parquet" in m for m in logged)


@pytest.mark.parametrize("damage", DAMAGES)
def test_compact_names_the_damaged_file_and_compacts_the_others(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _lake(tmp_path, DAMAGES[damage])
    for day in ("2025-10-02", "2025-10-03"):  # two files each: both partitions need compacting
        extra = make_event(messageId=f"x{day}", timestamp=_day(int(day[-2:])))
        write_lake(lake, [extra], file_name="part-1.parquet")
    assert main(["compact", "--lake", str(lake)]) == 1
    out = capsys.readouterr().out
    damaged = lake / "events" / DAMAGED
    assert f"failed: events/date=2025-10-02: damaged file {damaged}: " in out
    assert "Traceback" not in out
    assert sorted(p.name for p in damaged.parent.iterdir()) == ["part-0.parquet", "part-1.parquet"]
    assert len(list((lake / "events" / "date=2025-10-03").glob("*.parquet"))) == 1  # compacted
    assert "serving index: indexed 2 of 3 event partitions" in out


@pytest.mark.parametrize("damage", DAMAGES)
def test_identity_names_the_damaged_file_and_writes_nothing(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    lake = _lake(tmp_path, DAMAGES[damage])
    before = sorted(p.relative_to(lake) for p in lake.rglob("*") if "_staging" not in p.parts)
    with caplog.at_level(logging.ERROR, logger="eventpipe.identity"):
        assert main(["identity", "--lake", str(lake)]) == 3
    [error] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "cannot build the identity graph (nothing was written)" in error
    assert f"file '{lake / 'events' / DAMAGED}'" in error
    assert not (lake / "identity").exists()
    after = sorted(p.relative_to(lake) for p in lake.rglob("*") if "_staging" not in p.parts)
    assert [p for p in after if p not in before and p.name != "_LOCK"] == []
