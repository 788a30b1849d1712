"""The one notion of a lake path and of a partition (schemas/lake_layout.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from eventpipe.schemas.lake_layout import Partition, is_remote, list_partitions, partition_name


@pytest.mark.parametrize(
    ("path", "remote"),
    [("gs://bucket/lake", True), ("s3://b/l", True), ("/data/lake", False), ("lake", False),
     (Path("/data/lake"), False)],
)  # fmt: skip
def test_is_remote(path, remote):
    assert is_remote(path) == remote


def _lake(tmp_path: Path) -> Path:
    for folder, names in {
        "events/date=2026-01-02": [
            "b.parquet",
            "a.parquet",
            "_RUN",
            ".hidden.parquet",
            "_x.parquet",
        ],
        "events/date=2026-01-01": ["c.parquet"],
        "events/date=2026-01-03": ["notes.txt"],  # no Parquet file: not a partition
        "events/date=2026-02-30": ["d.parquet"],  # not a date
        "events/other": ["e.parquet"],
        "failed/date=2026-01-05": ["f.parquet"],
    }.items():
        (tmp_path / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / folder / name).write_bytes(b"12345")
    (tmp_path / "events" / "date=2026-01-04").write_text("a file, not a folder")
    return tmp_path


def test_the_partitions_of_a_table_oldest_first_with_their_parquet_files(tmp_path):
    lake = _lake(tmp_path)
    events = tmp_path / "events"
    assert list_partitions(lake, "events") == [
        Partition(dt.date(2026, 1, 1), (str(events / "date=2026-01-01" / "c.parquet"),), "events",
                  str(events / "date=2026-01-01")),
        Partition(dt.date(2026, 1, 2), tuple(str(events / "date=2026-01-02" / n) for n in ("a.parquet", "b.parquet")),
                  "events", str(events / "date=2026-01-02")),
    ]  # fmt: skip
    [failed] = list_partitions(str(lake), "failed")
    assert (failed.name, failed.table, failed.total_bytes()) == ("date=2026-01-05", "failed", 5)


@pytest.mark.parametrize(
    ("first", "last", "days"),
    [(None, None, [1, 2]), (dt.date(2026, 1, 2), None, [2]), (None, dt.date(2026, 1, 1), [1]),
     (dt.date(2026, 1, 1), dt.date(2026, 1, 1), [1]), (dt.date(2026, 1, 3), None, [])],
)  # fmt: skip
def test_a_range_of_partitions_is_inclusive(tmp_path, first, last, days):
    found = list_partitions(_lake(tmp_path), "events", first, last)
    assert [p.day.day for p in found] == days


def test_a_missing_table_has_no_partitions(tmp_path):
    assert list_partitions(tmp_path, "events") == []
    assert partition_name(dt.date(2026, 1, 9)) == "date=2026-01-09"
