"""Deduplication by (connectionId, messageId): the survivor rule, and across imports end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventpipe.core.duck import connect
from eventpipe.io import dedupe
from eventpipe.io.failed_dedupe import KEY_COLUMNS, _read, drop_stored_failed
from eventpipe.io.lake import FAILED, write_parquet
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate
from eventpipe.schemas.failures import FAILED_SCHEMA

from pipeline_support import Stages, make_event

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def keys(*rows: tuple) -> pa.Table:
    """Key rows: (connectionId, messageId, existing, received minute, source, line, file, row
    [, index in its batch: 0 when left out])."""
    columns = list(zip(*(r if len(r) == 9 else (*r, 0) for r in rows), strict=True))
    return pa.Table.from_arrays(
        [
            pa.array(columns[0], pa.int32()),
            pa.array(columns[1]),
            pa.array(columns[2]),
            pa.array(
                [None if m is None else T0 + timedelta(minutes=m) for m in columns[3]],
                pa.timestamp("us", tz="UTC"),
            ),
            pa.array(columns[4]).dictionary_encode(),
            pa.array(columns[5], pa.int64()),
            pa.array(columns[8], pa.int32()),
            pa.array(columns[6], pa.string()).dictionary_encode(),
            pa.array(columns[7], pa.int32()),
        ],
        schema=dedupe.KEY_SCHEMA,
    )


NEW, OLD = False, True
CASES = [
    # (case, keys, expected {file: rows dropped})
    ("no duplicates", [(1, "a", NEW, 0, "f", 1, "x", 0), (1, "b", NEW, 0, "f", 2, "x", 1)], {}),
    ("same id, other connection: two events",
     [(1, "a", NEW, 0, "f", 1, "x", 0), (2, "a", NEW, 0, "f", 2, "x", 1)], {}),
    ("the copy received first survives",
     [(1, "a", NEW, 5, "f", 1, "x", 0), (1, "a", NEW, 2, "g", 9, "y", 0)], {"x": [0]}),
    ("same receivedAt: the first in the input survives (source, then line)",
     [(1, "a", NEW, 2, "g", 1, "x", 0), (1, "a", NEW, 2, "f", 7, "y", 3),
      (1, "a", NEW, 2, "f", 3, "y", 4)], {"x": [0], "y": [3]}),
    ("same receivedAt, source and line: the lower index in the batch survives",
     [(1, "a", NEW, 2, "f", 3, "x", 0, 2), (1, "a", NEW, 2, "f", 3, "x", 1, 1)], {"x": [0]}),
    ("index is compared before the staged file and row",
     [(1, "a", NEW, 2, "f", 3, "x", 5, 0), (1, "a", NEW, 2, "f", 3, "w", 9, 4)], {"w": [9]}),
    ("a copy the lake holds beats every new one, even one received earlier",
     [(1, "a", OLD, None, None, None, None, None), (1, "a", NEW, 0, "f", 1, "x", 0),
      (1, "a", NEW, 1, "f", 2, "x", 1)], {"x": [0, 1]}),
    ("copies within one file", [(1, "a", NEW, 0, "f", 1, "x", 0), (1, "a", NEW, 0, "f", 2, "x", 1),
                                (1, "a", NEW, 0, "f", 3, "x", 2)], {"x": [1, 2]}),
    ("only existing keys: nothing to drop",
     [(1, "a", OLD, None, None, None, None, None), (1, "a", OLD, None, None, None, None, None)], {}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "rows", "expected"), CASES, ids=[c[0] for c in CASES])
def test_which_copy_survives(case, rows, expected):
    con = connect()
    assert dict(dedupe.duplicate_rows(con, keys(*rows))) == expected
    # The verdict does not depend on the order the runner delivers the keys in.
    assert dict(dedupe.duplicate_rows(con, keys(*reversed(rows)))) == expected


def test_first_copies_follow_the_same_rule():
    con = connect()
    rows = [(1, "a", NEW, 5, "f", 1, None, 0), (1, "a", NEW, 2, "g", 9, None, 1),
            (1, "b", NEW, 0, "f", 3, None, 2), (2, "a", NEW, 9, "f", 4, None, 3)]  # fmt: skip
    first, bucket = dedupe.first_copies(con, keys(*rows), 3)
    assert first.tolist() == [False, True, True, True]
    assert bucket[0] == bucket[1] and set(bucket.tolist()) <= {0, 1, 2}
    # Same receivedAt, source and line: the lower index in the batch is the first copy,
    # wherever it stands in the input.
    batch = [(1, "a", NEW, 0, "f", 1, None, 0, 3), (1, "a", NEW, 0, "f", 1, None, 1, 0)]
    first, _ = dedupe.first_copies(con, keys(*batch), 3)
    assert first.tolist() == [False, True]


def _envelope(received_minute: int, message: str, hour: int, value: int) -> str:
    """A landing envelope of one event (its receive time decides which copy is first)."""
    event = make_event(
        messageId=message, timestamp=f"2026-11-01T{hour:02d}:00:00Z", properties={"v": value}
    )
    received = (T0 + timedelta(minutes=received_minute)).isoformat().replace("+00:00", "Z")
    envelope = {"receivedAt": received, "ip": "1.2.3.4", "connectionId": 1, "body": event}
    return orjson.dumps(envelope).decode()


def test_drop_own_copies_keeps_the_first_copy_sorted_with_its_bucket():
    """A writer's own duplicates (the in-process ingester and the Beam sink share this)."""
    events, failed, _ = Stages().run_tables(
        [
            _envelope(5, "m1", 9, 1),  # m1 received at minute 5
            _envelope(0, "m2", 7, 2),
            _envelope(2, "m1", 9, 3),  # m1 again, received earlier: this copy survives
            _envelope(1, "m3", 8, 4),
            _envelope(7, "m1", 9, 5),
        ]
    )
    assert failed.num_rows == 0
    kept, bucket, dropped = dedupe.drop_own_copies(connect(), events, "timestamp", 4)
    assert dropped == 2
    assert kept["messageId"].to_pylist() == ["m2", "m3", "m1"]  # sorted by timestamp
    values = [json.loads(p)["v"] for p in kept["properties"].to_pylist()]
    assert values == [2, 4, 3]
    first, expected = dedupe.first_copies(connect(), dedupe.event_keys(kept), 4)
    assert first.all() and bucket.tolist() == expected.tolist()  # each row's own bucket
    assert set(bucket.tolist()) <= {0, 1, 2, 3}


def test_buckets_keep_every_copy_of_a_key_together():
    con = connect()
    rows = [(c, f"m{i % 50}", NEW, i, "f", i, "x", i) for i in range(400) for c in (1, 2)]
    table = keys(*rows)
    parts = list(dedupe.split_by_bucket(con, table, 7))
    assert sum(p.num_rows for _, p in parts) == table.num_rows
    owner: dict[tuple, int] = {}
    for bucket, part in parts:
        assert 0 <= bucket < 7
        for key in zip(
            part["connectionId"].to_pylist(), part["messageId"].to_pylist(), strict=True
        ):
            assert owner.setdefault(key, bucket) == bucket
    assert len(set(owner.values())) > 1


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dedupe-corpus")
    manifest = generate(out, events=3000, seed=5, units_per_file=1000)
    return out, manifest


def run_import(lake: Path, *inputs: str) -> dict:
    before = set((lake / "_runs").glob("*.json")) if (lake / "_runs").exists() else set()
    assert main(["import", *inputs, "--lake", str(lake), "--connection-id", "1"]) == 0
    [new] = set((lake / "_runs").glob("*.json")) - before
    return json.loads(new.read_text())


def lake_rows(lake: Path, table: str = "events") -> list[tuple]:
    con = duckdb.connect()
    return con.execute(
        f"SELECT connectionId, messageId, count(*) FROM read_parquet('{lake}/{table}/*/*.parquet') "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def test_importing_the_same_files_twice_adds_nothing(corpus, tmp_path):
    corpus_dir, manifest = corpus
    lake = tmp_path / "lake"
    first = run_import(lake, str(corpus_dir / "*"))
    assert first["written"] == manifest["expected_written"]
    assert first["duplicates"] == manifest["duplicates"]
    rows = lake_rows(lake)
    assert len(rows) == first["written"] and {n for *_, n in rows} == {1}

    second = run_import(lake, str(corpus_dir / "*"))
    assert second["reconciles"]
    assert second["written"] == 0
    # Invalid records are rejected again, and found stored: duplicates, not new failed rows.
    assert second["duplicates"] == (
        manifest["expected_written"] + manifest["duplicates"] + first["failed"]
    )
    assert second["failed"] == 0
    failed = sum(pq.read_metadata(p).num_rows for p in lake.glob("failed/*/*.parquet"))
    assert failed == first["failed"]
    assert lake_rows(lake) == rows
    # The raw archive holds each stored event once, partition by partition.
    con = duckdb.connect()
    per_day = (
        "SELECT date, count(*) FROM read_parquet('{}/{}/*/*.parquet', hive_partitioning=true) "
        "GROUP BY 1 ORDER BY 1"
    )
    assert (
        con.execute(per_day.format(lake, "raw")).fetchall()
        == con.execute(per_day.format(lake, "events")).fetchall()
    )


def write_jsonl(path: Path, events: list[dict]) -> str:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


def test_overlapping_exports_keep_the_copy_received_first(tmp_path):
    def event(i: int, received_minute: int, label: str) -> dict:
        received = T0 + timedelta(hours=i, minutes=received_minute)
        stamp = received.isoformat().replace("+00:00", "Z")
        return make_event(messageId=f"m-{i}", timestamp=stamp, sentAt=stamp,
                          receivedAt=stamp, properties={"copy": label})  # fmt: skip

    lake = tmp_path / "lake"
    monday = write_jsonl(tmp_path / "monday.jsonl", [event(i, 5, "monday") for i in range(10)])
    # Tuesday's export repeats events 5..9: 5..7 received earlier than Monday's copy, 8..9 later.
    tuesday_events = [event(i, 1 if i < 8 else 9, "tuesday") for i in range(5, 15)]
    tuesday_events.append(event(14, 0, "tuesday-again"))  # and a copy within the same file
    tuesday = write_jsonl(tmp_path / "tuesday.jsonl", tuesday_events)

    together = run_import(tmp_path / "together", monday, tuesday)
    assert (together["written"], together["duplicates"]) == (15, 6)
    con = duckdb.connect()
    survivors = dict(
        con.execute(
            f"SELECT messageId, properties->>'copy' FROM read_parquet('{tmp_path}/together/events/*/*.parquet')"
        ).fetchall()
    )
    assert survivors == {
        **{f"m-{i}": "monday" for i in (0, 1, 2, 3, 4, 8, 9)},
        **{f"m-{i}": "tuesday" for i in (5, 6, 7, 10, 11, 12, 13)},
        "m-14": "tuesday-again",
    }

    # One after the other: what the lake holds wins, whatever its receivedAt.
    first = run_import(lake, monday)
    second = run_import(lake, tuesday)
    assert (first["written"], second["written"], second["duplicates"]) == (10, 5, 6)
    stored = dict(
        con.execute(
            f"SELECT messageId, properties->>'copy' FROM read_parquet('{lake}/events/*/*.parquet')"
        ).fetchall()
    )
    assert {m for m, c in stored.items() if c == "monday"} == {f"m-{i}" for i in range(10)}
    assert lake_rows(lake) == [(1, f"m-{i}", 1) for i in sorted(range(15), key=lambda i: f"m-{i}")]


def failed_row(source: str, line: int, index: int | None, minute: int, **other) -> dict:
    """A failed row (FAILED_SCHEMA) of `source`; `other` replaces reason, raw, connectionId."""
    return {
        "receivedAt": T0 + timedelta(minutes=minute),
        "reason": other.get("reason", "invalid_value"),
        "field": "type",
        "message": "property 'type' must be one of ...",
        "source": source,
        "line": line,
        "index": index,
        "connectionId": other.get("connectionId", 1),
        "raw": other.get("raw", f"{source}:{line}:{index}"),
        "runId": "run",
    }


# (case, lake rows, staged files (rows each), rows kept per staged file, dropped per reason)
_A, _B = ("a.jsonl", 1, 0, 5), ("a.jsonl", 2, None, 5)
FAILED_DEDUPE_CASES = [
    ("nothing stored: all kept", [], [[_A, _B]], [[_A, _B]], {}),
    ("a copy in the lake is dropped", [_A], [[_A, _B]], [[_B]], {"invalid_value": 1}),
    ("a staged file of copies only is deleted", [_A, _B], [[_A, _B]], [None], {"invalid_value": 2}),
    ("the same record twice in one run: first kept", [], [[_A, _A]], [[_A]], {"invalid_value": 1}),
    (
        "the copy of a later staged file is dropped",
        [],
        [[_A], [_A]],
        [[_A], None],
        {"invalid_value": 1},
    ),
    (
        "received first wins between staged files",
        [],
        [[("a.jsonl", 1, 0, 9)], [("a.jsonl", 1, 0, 2)]],
        [None, [("a.jsonl", 1, 0, 2)]],
        {"invalid_value": 1},
    ),
    ("other source in the lake: kept", [("b.jsonl", 1, 0, 5)], [[_A]], [[_A]], {}),
    ("other line: kept", [("a.jsonl", 3, 0, 5)], [[_A]], [[_A]], {}),
    ("other index: kept", [("a.jsonl", 1, 1, 5)], [[_A]], [[_A]], {}),
    ("null index and index 0 differ", [("a.jsonl", 1, None, 5)], [[_A]], [[_A]], {}),
    ("other raw (file rewritten): kept", [(*_A, {"raw": "x"})], [[_A]], [[_A]], {}),
    ("other reason: kept", [(*_A, {"reason": "invalid_type"})], [[_A]], [[_A]], {}),
    ("other connection: kept", [(*_A, {"connectionId": 2})], [[_A]], [[_A]], {}),
    (
        "a copy under another receivedAt is still a copy",
        [("a.jsonl", 1, 0, 50)],
        [[_A]],
        [None],
        {"invalid_value": 1},
    ),
    (
        "counts by reason",
        [_A, (*_B, {"reason": "invalid_type"})],
        [[_A, (*_B, {"reason": "invalid_type"})]],
        [None],
        {"invalid_value": 1, "invalid_type": 1},
    ),
]


def _failed_table(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_pylist(
        [failed_row(*r[:4], **(r[4] if len(r) > 4 else {})) for r in rows], FAILED_SCHEMA
    )


@pytest.mark.parametrize(
    ("case", "stored", "staged", "kept", "dropped"),
    FAILED_DEDUPE_CASES,
    ids=[c[0] for c in FAILED_DEDUPE_CASES],
)
def test_failed_rows_stored_once(tmp_path, case, stored, staged, kept, dropped):
    """README: a re-run adds no copy of a rejected record the lake holds (failed_dedupe)."""
    lake = str(tmp_path / "lake")
    if stored:
        write_parquet(_failed_table(stored), f"{lake}/{FAILED}/date=2026-11-01/0.parquet", False)
    write_parquet(  # a lake file of other sources only is read and changes nothing
        _failed_table([("z.jsonl", 1, 0, 5)]), f"{lake}/{FAILED}/date=2026-11-02/0.parquet", False
    )
    paths = [str(tmp_path / f"staged-{n}.parquet") for n in range(len(staged))]
    for path, rows in zip(paths, staged, strict=True):
        write_parquet(_failed_table(rows), path, False)
    assert drop_stored_failed(connect(), lake, reversed(paths)) == dropped
    for path, rows in zip(paths, kept, strict=True):
        if rows is None:
            assert not Path(path).exists()
        else:
            assert pq.read_table(path).to_pylist() == _failed_table(rows).to_pylist()


def test_the_keys_of_staged_and_stored_events():
    """A staged event's key carries what the survivor rule reads; a stored one is `existing`."""
    record = {
        "receivedAt": "2026-11-20T10:00:00Z",
        "batch": [make_event(), make_event(messageId="m2")],
    }
    events, _, _ = Stages().run_tables(["{}", orjson.dumps(record).decode()])
    got = dedupe.event_keys(events)
    assert got.schema == dedupe.KEY_SCHEMA
    assert got.to_pylist() == [
        {"connectionId": 1, "messageId": m, "existing": False,
         "receivedAt": datetime(2026, 11, 20, 10, tzinfo=UTC), "source": "test.jsonl",
         "line": 2, "index": i, "file": None, "row": i}
        for i, m in enumerate(["msg-1", "m2"])
    ]  # fmt: skip
    files = pa.array(["date=2026-11-20/a.parquet"] * 2).dictionary_encode()
    placed = dedupe.event_keys(events, files, pa.array([7, 8], pa.int32()))
    assert placed["file"].to_pylist() == ["date=2026-11-20/a.parquet"] * 2
    assert placed["row"].to_pylist() == [7, 8]
    stored = dedupe.existing_keys(events.select(["connectionId", "messageId"]))
    assert stored.schema == dedupe.KEY_SCHEMA
    assert stored.to_pylist()[0] == {
        "connectionId": 1, "messageId": "msg-1", "existing": True, "receivedAt": None,
        "source": None, "line": None, "index": None, "file": None, "row": None,
    }  # fmt: skip
    assert dict(dedupe.duplicate_rows(connect(), pa.concat_tables([stored, placed]))) == {
        "date=2026-11-20/a.parquet": [7, 8]
    }


def test_a_bucket_of_one_key_keeps_it():
    [(bucket, part)] = list(
        dedupe.split_by_bucket(connect(), keys((1, "a", NEW, 0, "f", 1, "x", 0)), 7)
    )
    assert 0 <= bucket < 7
    assert part.to_pylist() == keys((1, "a", NEW, 0, "f", 1, "x", 0)).to_pylist()


def test_only_the_keys_of_the_runs_sources_are_read_from_the_lake(tmp_path):
    """failed_dedupe reads the lake's failed rows of the run's sources only, key columns only."""
    path = str(tmp_path / "failed.parquet")
    write_parquet(_failed_table([_A, ("b.jsonl", 1, 0, 5), _B]), path, False)
    assert (
        _read(path, ["a.jsonl"]).to_pylist()
        == _failed_table([_A, _B]).select(KEY_COLUMNS).to_pylist()
    )
    assert _read(path).num_rows == 3
