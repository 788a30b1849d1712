"""`eventpipe erase` on a lake: every place of the person's data goes, physically; nobody
else's rows change; a kill leaves every day old or new; a second run finds nothing."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from collector_support import bearer, serve_process
from erasure_support import (
    BOTH,
    DAYS,
    PERSON,
    PERSON_ANON,
    build_lake,
    carries,
    erased_line,
    files_holding,
    is_persons_archive,
    is_persons_event,
    others,
    table_rows,
)

from eventpipe.identity.store import read_identity, read_kpid_map
from eventpipe.io.lake import write_parquet
from eventpipe.jobs.cli import main
from eventpipe.listeners.store import LISTENERS_FILE, ListenerStore, Matched
from eventpipe.serving.index_build import index_is_current

from pipeline_support import kill_job_at

pytestmark = pytest.mark.slow


def landed_events(lake: Path, ids: tuple[str, ...] = (PERSON, PERSON_ANON)) -> int:
    """The person's events in the landing log's segments (imported or not), counted here."""
    count = 0
    for path in [*lake.glob("landing/*.jsonl"), *lake.glob("landing/imported/*.jsonl")]:
        for line in path.read_bytes().splitlines():
            body = json.loads(line)["body"]
            events = body["batch"] if isinstance(body, dict) and "batch" in body else [body]
            count += sum(
                any(e.get(k) in ids for k in ("userId", "anonymousId", "previousId"))
                for e in events
            )
    return count


def identity_rows(lake: Path, ids: tuple[str, ...] = (PERSON, PERSON_ANON)) -> int:
    tables = read_identity(str(lake))
    return sum(
        sum(any(v in ids for v in row.values()) for row in table.to_pylist())
        for table in tables.values()
    )


def expected_counts(lake: Path) -> dict[str, int]:
    persons = [r for r in table_rows(lake, "events") if is_persons_event(r)]
    carried = {r[c] for r in persons for c in ("userId", "anonymousId", "previousId")}
    return {
        "events": sum(is_persons_event(r) for r in table_rows(lake, "events")),
        "archive": sum(is_persons_archive(r) for r in table_rows(lake, "raw")),
        "failed": sum(carries(r["raw"]) for r in table_rows(lake, "failed")),
        "landing": landed_events(lake),
        "identity": identity_rows(lake, tuple((carried - {None}) | {PERSON, PERSON_ANON})),
        "listeners": listened(lake),
    }


def listened(lake: Path) -> int:
    """The person's events held by event listeners, read from their file here."""
    path = lake / LISTENERS_FILE
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path)) as db:
        events = [json.loads(e) for (e,) in db.execute("SELECT event FROM captured")]
    return sum(e.get("userId") == PERSON or e.get("anonymousId") == PERSON_ANON for e in events)


def partition_files(lake: Path, table: str) -> dict[str, set[str]]:
    return {
        day.name: {p.name for p in day.glob("*.parquet")} for day in (lake / table).glob("date=*")
    }


def api_events(url: str, key: str, prop: str, value: str) -> list[dict]:
    condition = {"property": prop, "operator": "is", "values": [value]}
    query = {"filter": json.dumps({"logical": "and", "conditions": [condition]})}
    answer = httpx.get(f"{url}/v1/events", params=query, headers=bearer(key), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


def listen(lake: Path) -> ListenerStore:
    """A listener holding one event of the person and one of someone else."""
    store = ListenerStore(lake / LISTENERS_FILE)
    listener = store.create(1, None, 10, None, 600.0)
    events = [
        json.dumps({"messageId": "l-1", "userId": PERSON, "connectionId": 1}).encode(),
        json.dumps({"messageId": "l-2", "userId": "user-bob", "connectionId": 1}).encode(),
    ]
    store.capture({listener: Matched(events, 2)})
    return store


def test_erase_removes_every_trace_and_nothing_else(tmp_path, capsys):
    lake = build_lake(tmp_path)
    root = lake.path
    store = listen(root)
    expected = expected_counts(root)
    assert expected["listeners"] == 1
    assert all(expected.values()), expected  # the person is in every place
    before = others(root)
    untouched = root / "events" / f"date={DAYS[2]}"
    inodes = {p.name: p.stat().st_ino for p in untouched.glob("*.parquet")}
    capsys.readouterr()

    assert main(["erase", "--lake", str(root), *BOTH]) == 0
    output = capsys.readouterr().out
    assert erased_line(output) == expected
    # the anonymousIds derived from the userId, one per connection: counted, never named
    assert "belong to profiles with 2 other ids, which stay" in output
    assert files_holding(root) == []  # no Parquet, index, landing, identity, listener or run file
    assert others(root) == before
    listener = store.live(store.reader())[0].id
    held = store.read(listener, 1).events
    assert [json.loads(e)["messageId"] for e in held] == ["l-2"]  # the others' event stays
    assert {p.name: p.stat().st_ino for p in untouched.glob("*.parquet")} == inodes
    for day in DAYS:  # rebuilt indexes, current for the new files
        assert index_is_current(str(root), str(root / "events" / f"date={day}"))
    assert not list((root / "_staging").glob("*/*"))

    with serve_process(root) as (url, _):
        for key in (lake.a.api_read, lake.b.api_read):
            assert api_events(url, key, "userId", PERSON) == []
            assert api_events(url, key, "anonymousId", PERSON_ANON) == []
        assert len(api_events(url, lake.a.api_read, "userId", "user-bob")) == 3

    assert main(["erase", "--lake", str(root), *BOTH]) == 0  # a second run finds nothing
    assert erased_line(capsys.readouterr().out) == dict.fromkeys(expected, 0)
    runs = [json.loads(p.read_text()) for p in (root / "_runs").glob("*.json")]
    erasures = sorted((r for r in runs if r["job"] == "erase"), key=lambda r: r["run_id"])
    assert [r["counts"] for r in erasures] == [expected, dict.fromkeys(expected, 0)]
    assert len(erasures[0]["ids"]["user"]) == 1 and len(erasures[0]["ids"]["anonymous"]) == 1


def test_a_workspace_erases_only_its_connections(tmp_path, capsys):
    lake = build_lake(tmp_path)
    root = lake.path
    theirs = [r for r in table_rows(root, "events") if r["connectionId"] == lake.b.connection]
    capsys.readouterr()

    assert main(["erase", "--lake", str(root), *BOTH, "--workspace", str(lake.a.workspace)]) == 0
    counts = erased_line(capsys.readouterr().out)
    assert counts["events"] == 3  # the person's events of alpha, not beta's
    left = [r for r in table_rows(root, "events") if is_persons_event(r)]
    assert left == [r for r in theirs if r["userId"] == PERSON]
    # The userId is still carried by beta's event: its identity rows stay; the anonymous id
    # is gone with alpha's events.
    ids = {row["id"] for row in read_kpid_map(str(root)).to_pylist()}
    assert PERSON in ids and PERSON_ANON not in ids
    assert files_holding(root, (PERSON_ANON,)) == []


def test_kpid_erases_every_id_of_the_profile(tmp_path, capsys):
    lake = build_lake(tmp_path)
    root = lake.path
    kpid = next(r["kpid"] for r in read_kpid_map(str(root)).to_pylist() if r["id"] == PERSON)
    expected = expected_counts(root)
    before = others(root)
    capsys.readouterr()

    assert main(["erase", "--lake", str(root), "--kpid", kpid]) == 0
    assert erased_line(capsys.readouterr().out) == expected
    assert files_holding(root, (PERSON, PERSON_ANON, kpid)) == []
    assert others(root) == before


@pytest.mark.parametrize("moment", ["before-commit", "commit-swapped-first"])
def test_a_kill_mid_erasure_leaves_every_day_old_or_new(tmp_path, capsys, moment):
    lake = build_lake(tmp_path)
    root = lake.path
    old = {t: partition_files(root, t) for t in ("events", "raw")}
    old_rows = {t: table_rows(root, t) for t in ("events", "raw")}
    before = others(root)
    marker = tmp_path / "paused"

    kill_job_at(moment, ["erase", "--lake", str(root), *BOTH], marker)
    for table in ("events", "raw"):
        for day, names in partition_files(root, table).items():
            new = all(n.startswith("part-erase-") for n in names)
            assert names == old[table][day] or new, (table, day, names)
    assert landed_events(root) == 0  # the landing log goes first: no import brings them back
    swapped = moment == "commit-swapped-first"  # else: staged, nothing visible yet
    assert (table_rows(root, "events") != old_rows["events"]) is swapped
    capsys.readouterr()

    assert main(["erase", "--lake", str(root), *BOTH]) == 0  # recovers, then finishes
    assert files_holding(root) == []
    assert others(root) == before
    runs = [json.loads(p.read_text()) for p in (root / "_runs").glob("*.json")]
    assert [r["status"] for r in runs if r.get("status")] == (["recovered"] if swapped else [])


def test_nothing_to_erase_is_not_an_error(tmp_path, capsys):
    lake = build_lake(tmp_path)
    before = {t: partition_files(lake.path, t) for t in ("events", "raw", "failed")}
    assert main(["erase", "--lake", str(lake.path), "--user-id", "nobody-at-all"]) == 0
    assert set(erased_line(capsys.readouterr().out).values()) == {0}
    assert {t: partition_files(lake.path, t) for t in before} == before


@pytest.mark.parametrize(
    "args",
    [
        ["--lake", "LAKE"],  # no id
        ["--lake", "LAKE", "--user-id", "x", "--requests"],
        ["--lake", "LAKE", "--requests", "--workspace", "1"],
    ],
)
def test_bad_flags_exit_2(tmp_path, args):
    with pytest.raises(SystemExit) as stop:
        main(["erase", *[str(tmp_path) if a == "LAKE" else a for a in args]])
    assert stop.value.code == 2


def test_an_unknown_workspace_exits_2(tmp_path):
    lake = build_lake(tmp_path)
    assert (
        main(["erase", "--lake", str(lake.path), "--user-id", PERSON, "--workspace", "nope"]) == 2
    )
    assert os.path.isdir(lake.path / "events")


def test_only_the_files_holding_the_person_are_rewritten(tmp_path, capsys):
    lake = build_lake(tmp_path)
    day = lake.path / "events" / f"date={DAYS[0]}"
    [compacted] = day.glob("*.parquet")
    rows = pq.read_table(compacted)
    mask = pa.array([is_persons_event(r) for r in rows.to_pylist()])
    write_parquet(rows.filter(mask), str(day / "part-a.parquet"), event_table=True)
    write_parquet(rows.filter(pc.invert(mask)), str(day / "part-b.parquet"), event_table=True)
    compacted.unlink()
    clean = (day / "part-b.parquet").stat()

    assert main(["erase", "--lake", str(lake.path), *BOTH]) == 0
    names = sorted(p.name for p in day.glob("*.parquet"))
    assert names == ["part-b.parquet"]  # part-a held only the person: no file replaces it
    kept = (day / "part-b.parquet").stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (clean.st_ino, clean.st_mtime_ns)
    assert files_holding(lake.path) == []
