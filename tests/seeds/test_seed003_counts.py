"""Count summaries (eventpipe.serving.count_summary): written by every lake transaction,
used by LakeReader.count_events for whole days, exact whatever wrote the lake."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from api_support import make_event, write_lake

from eventpipe.api.filters import compile_filters
from eventpipe.api.limits import ServerBusy
from eventpipe.api.query import LakeReader
from eventpipe.io.compaction import compact_lake
from eventpipe.io.lake import EVENTS
from eventpipe.io.lake_sink import write_visible
from eventpipe.io.lake_transaction import LakeTransaction
from eventpipe.schemas import arrow_schema
from eventpipe.schemas.lake_layout import list_partitions
from eventpipe.serving.count_summary import count_plan, read_summary, summary_path
from eventpipe.serving.event_query import EventQuery

UTC = dt.UTC
START = dt.datetime(2026, 3, 1, tzinfo=UTC)
NAMES = ("a", "b", "c")


def _rows(n: int, shift: int = 0) -> list[dict[str, Any]]:
    """`n` events every 97 minutes from START, of three names, a page event every 5th,
    over connections 1, 2 and 3."""
    rows = []
    for i in range(n):
        page = i % 5 == 0
        rows.append(
            make_event(
                messageId=f"m{shift}-{i:05d}",
                connectionId=1 + i % 3,
                timestamp=START + dt.timedelta(minutes=97 * i + shift),
                type="page" if page else "track",
                event=None if page else NAMES[i % 3],
            )
        )
    return rows


def _commit(lake: Path, rows: list[dict[str, Any]], name: str) -> None:
    """Write `rows` as one file per day through the stream's writer (a lake transaction)."""
    files = []
    for day in sorted({r["timestamp"].date() for r in rows}):
        part = [r for r in rows if r["timestamp"].date() == day]
        table = pa.Table.from_pylist(part, schema=arrow_schema())
        files.append((EVENTS, f"date={day}/part-{name}.parquet", table))
    write_visible(str(lake), f"txn-{name}", files)


def _query(
    start: str, end: str, names: list[str] | None = None, connections: frozenset[int] | None = None
) -> EventQuery:
    document = {
        "logical": "and",
        "conditions": [
            {"property": "timestamp", "operator": "is on or after", "values": [start]},
            {"property": "timestamp", "operator": "is before", "values": [end]},
        ],
    }
    groups = []
    if names:
        conditions = [{"property": "event", "operator": "is one of", "values": names}]
        if "page" in names:
            conditions.append({"property": "type", "operator": "is one of", "values": ["page"]})
        groups.append({"logical": "or", "conditions": conditions})
    return EventQuery(connections=connections, predicate=compile_filters(document, groups))


def _expected(rows: list[dict[str, Any]], query: EventQuery, start: str, end: str, names) -> int:
    low, high = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
    return sum(
        1
        for r in rows
        if low <= r["timestamp"] < high
        and (names is None or (r["event"] or r["type"]) in names)
        and (query.connections is None or r["connectionId"] in query.connections)
    )


CASES = [
    ("2026-03-01T00:00:00+00:00", "2026-03-08T00:00:00+00:00", None, None),
    ("2026-03-01T00:00:00+00:00", "2026-03-08T00:00:00+00:00", ["a"], frozenset({1, 2})),
    ("2026-03-02T13:14:00+00:00", "2026-03-06T07:00:00+00:00", ["b", "page"], None),
    ("2026-03-02T00:00:00+00:00", "2026-03-03T00:00:00+00:00", ["c"], frozenset({3})),
    ("2026-03-03T05:00:00+00:00", "2026-03-03T06:00:00+00:00", None, frozenset({1})),
    ("2026-03-01T00:00:00+00:00", "2026-03-08T00:00:00+00:00", None, frozenset()),
]


def _check(lake: Path, rows: list[dict[str, Any]]) -> None:
    fast, scan = LakeReader(lake), LakeReader(lake, use_summaries=False)
    for start, end, names, connections in CASES:
        query = _query(start, end, names, connections)
        want = _expected(rows, query, start, end, names)
        assert fast.count_events(query) == want == scan.count_events(query), (start, names)


def test_every_transaction_writes_the_summaries_and_counts_are_exact(tmp_path: Path) -> None:
    first, second = _rows(80), _rows(40, shift=13)
    _commit(tmp_path, first, "one")
    _commit(tmp_path, second, "two")  # a second file in the same days: not compacted
    events = list_partitions(tmp_path, "events")
    assert all(read_summary(f) is not None for p in events for f in p.files)
    _check(tmp_path, first + second)
    compact_lake(str(tmp_path), tables=[EVENTS])
    compacted = list_partitions(tmp_path, "events")
    assert any(len(p.files) == 1 for p in compacted)
    assert all(read_summary(f) is not None for p in compacted for f in p.files)
    _check(tmp_path, first + second)


def test_files_without_a_summary_or_with_a_stale_one_are_scanned(tmp_path: Path) -> None:
    committed, plain = _rows(60), _rows(30, shift=7)
    _commit(tmp_path, committed, "one")
    write_lake(tmp_path, plain, file_name="part-plain.parquet")  # no transaction: no summary
    _check(tmp_path, committed + plain)
    # A file rewritten in place (same name) by something that does not write summaries:
    day = list_partitions(tmp_path, "events")[2]
    target = next(f for f in day.files if "part-one" in f)
    assert read_summary(target) is not None
    fewer = [r for r in committed if r["timestamp"].date() == day.day][1:]
    pq.write_table(pa.Table.from_pylist(fewer, schema=arrow_schema()), target)
    assert read_summary(target) is None
    kept = [r for r in committed if r["timestamp"].date() != day.day] + fewer
    _check(tmp_path, kept + plain)


def test_a_deleted_file_takes_its_summary_with_it(tmp_path: Path) -> None:
    rows = _rows(40)
    _commit(tmp_path, rows, "one")
    day = list_partitions(tmp_path, "events")[0]
    txn = LakeTransaction.begin(str(tmp_path), "txn-delete", "test")
    txn.delete(day.files[0])
    txn.commit()
    assert not os.path.exists(summary_path(day.files[0]))
    _check(tmp_path, [r for r in rows if r["timestamp"].date() != day.day])


def test_whole_days_are_answered_from_the_summaries_without_reading_the_files(
    tmp_path: Path,
) -> None:
    """A file whose bytes are garbage (same size and time) cannot be scanned: the count of
    its whole day comes from its summary; a partial day of it must scan, and fails."""
    rows = _rows(60)
    _commit(tmp_path, rows, "one")
    day = list_partitions(tmp_path, "events")[1]
    (path,) = day.files
    stat = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(b"\0" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    reader = LakeReader(tmp_path)
    whole = ("2026-03-01T00:00:00+00:00", "2026-03-05T00:00:00+00:00")
    query = _query(*whole)
    assert reader.count_events(query) == _expected(rows, query, *whole, None)
    partial = _query("2026-03-02T01:00:00+00:00", "2026-03-05T00:00:00+00:00")
    with pytest.raises(ServerBusy, match="damaged"):
        reader.count_events(partial)


@pytest.mark.parametrize(
    ("conditions", "served"),
    [
        ([("timestamp", "is on or after", ["2026-03-01"])], True),
        ([("timestamp", "is between", ["2026-03-01", "2026-03-02"])], True),
        ([("timestamp", "is not", ["2026-03-01"])], False),
        ([("event", "starts with", ["a"]), ("connectionId", "is", ["1"])], True),
        ([("userId", "is", ["u1"])], False),
        ([("properties.plan", "is", ["pro"])], False),
    ],
)
def test_which_counts_the_summaries_answer(conditions, served) -> None:
    document = {
        "logical": "and",
        "conditions": [{"property": p, "operator": o, "values": v} for p, o, v in conditions],
    }
    plan = count_plan(compile_filters(document, []), frozenset({1}))
    assert (plan is not None) == served
    if plan is not None:
        assert plan.predicate.sql.startswith('t."connectionId" IN (1) AND (')


def test_a_replaced_partition_gets_summaries_of_its_new_files(tmp_path: Path) -> None:
    """As `eventpipe erase` replaces a day: unaffected files hard-linked into the staged
    folder, an affected one rewritten without some rows."""
    first, second = _rows(60), _rows(30, shift=11)
    _commit(tmp_path, first, "one")
    _commit(tmp_path, second, "two")
    day = list_partitions(tmp_path, "events")[1]
    kept = [r for r in second if r["timestamp"].date() == day.day][1:]
    txn = LakeTransaction.begin(str(tmp_path), "txn-erase", "erase")
    staged = Path(txn.replace_partition(EVENTS, day.name, old=list(day.files)))
    staged.mkdir(parents=True)
    one = next(f for f in day.files if "part-one" in f)
    os.link(one, staged / os.path.basename(one))
    pq.write_table(
        pa.Table.from_pylist(kept, schema=arrow_schema()), staged / "part-erased.parquet"
    )
    txn.commit()
    replaced = next(p for p in list_partitions(tmp_path, "events") if p.day == day.day)
    assert [os.path.basename(f) for f in replaced.files] == [
        "part-erased.parquet",
        "part-one.parquet",
    ]
    assert all(read_summary(f) is not None for f in replaced.files)
    gone = {r["messageId"] for r in second if r["timestamp"].date() == day.day} - {
        r["messageId"] for r in kept
    }
    _check(tmp_path, [r for r in first + second if r["messageId"] not in gone])
