"""The SQL identity build gives exactly `identity.rules.resolve`'s profiles, and persists."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.identity import assign_kpids, build_identity, identity_connection
from eventpipe.identity.graph import KPID_MAP_SCHEMA, TABLES
from eventpipe.identity.rules import (
    KPID_NAMESPACE,
    PLACEHOLDERS,
    Link,
    is_placeholder,
    links_of,
    resolve,
)
from eventpipe.identity.rules_sql import kpid_digest_sql, placeholder_macros, uuid5_sql
from eventpipe.identity.store import (
    read_identity,
    read_kpid_map,
    write_identity,
)
from eventpipe.io import lake_transaction as T
from eventpipe.io.lake_transaction import LakeTransaction, recover_transactions
from tests.identity.test_identity_rules import CASES, alias, at, events, identify, track

EVENT_SCHEMA = pa.schema(
    [
        ("type", pa.string()),
        ("anonymousId", pa.string()),
        ("userId", pa.string()),
        ("previousId", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
Row = tuple[str, str | None, str | None, str | None, datetime]


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    connection = identity_connection("256MB", str(tmp_path_factory.mktemp("spill")), threads=1)
    for macro in placeholder_macros():
        connection.execute(macro)
    yield connection
    connection.close()


def events_of_links(links: list[Link]) -> list[Row]:
    """Events whose `links_of` are exactly `links`."""
    rows: list[Row] = []
    for link in links:
        if link.kind == "identified":
            rows.append(("identify", link.other_id, link.user_id, None, link.timestamp))
        elif link.kind == "alias":
            rows.append(("alias", None, link.user_id, link.other_id, link.timestamp))
        else:
            rows.append(("track", None, link.user_id, None, link.timestamp))
    return rows


def table_of(rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(EVENT_SCHEMA.names, r, strict=True)) for r in rows],
                                schema=EVENT_SCHEMA)  # fmt: skip


def assert_same_as_rules(con, rows: list[Row]) -> None:
    """Build from `rows` in SQL; compare every id, event and conflict with `resolve`."""
    expected = resolve(link for row in rows for link in links_of(*row))
    result = build_identity(con, table_of(rows))
    kpid_map = result.table("kpid_map")
    found = {(k, i): p for k, i, p in zip(*kpid_map.to_pydict().values(), strict=True)}
    assert len(found) == kpid_map.num_rows == result.counts["kpid_map"]  # one row per id
    wanted = {("user", u): p for u, p in expected.user_kpids.items()}
    wanted |= {("anonymous", a): p for a, p in expected.anonymous_kpids.items()}
    assert found == wanted
    users = result.table("users").to_pydict()
    assert dict(zip(users["userId"], users["kpid"], strict=True)) == expected.user_kpids
    conflicts = {
        (c.anonymous_id, c.other_user_id, c.timestamp, expected.user_kpids[c.kept_user_id])
        for c in expected.conflicts
    }
    got = {tuple(r.values()) for r in result.table("conflicts").to_pylist()}
    assert got == conflicts
    assert result.counts["conflicts"] == len(expected.conflicts)
    stitched = assign_kpids(con, table_of(rows), kpid_map)
    assert stitched.column_names == [*EVENT_SCHEMA.names, "kpid"]
    assert stitched["kpid"].to_pylist() == [expected.kpid_of_event(r[1], r[2]) for r in rows]


@pytest.mark.parametrize("links", [pytest.param(c[1], id=c[0]) for c in CASES])
def test_every_rule_case_matches_the_rules(con, links):
    assert_same_as_rules(con, events_of_links(links))


def test_first_user_and_first_seen_tables(con):
    rows = events_of_links(
        events(track("dev", "alice", 1), identify("dev", "bob", 2), alias("old", "alice", 3))
    )
    result = build_identity(con, table_of(rows))
    anonymous = result.table("anonymous").to_pylist()
    assert [(r["anonymousId"], r["userId"], r["first_seen"]) for r in anonymous] == [
        ("dev", "alice", at(1))
    ]
    users = {r["userId"]: r["first_seen"] for r in result.table("users").to_pylist()}
    assert users == {"alice": at(1), "bob": at(2), "old": at(3)}
    assert result.table("aliases").to_pylist() == [
        {"previousId": "old", "userId": "alice", "first_seen": at(3)}
    ]


def test_long_alias_chain_in_any_order_is_one_profile(con):
    chain = [link for i in range(3000) for link in alias(f"c{i}", f"c{i + 1}", i % 7)]
    rows = events_of_links(chain[1::2] + chain[::2])  # interleaved order
    result = build_identity(con, table_of(rows))
    kpids = set(result.table("kpid_map")["kpid"].to_pylist())
    assert len(kpids) == 1 and result.counts["users"] == 3001
    assert result.rounds <= 20  # pointer jumping: logarithmic, not 3000 rounds
    assert_same_as_rules(con, rows)


TRICKY_IDS = [
    None, "", " ", "\t", "\u2003null\u00a0", " Guest ", "GUEST", "u\u017fer", "NİL", "ﬁ", "te\u017ft",
    "nullé", "ﬀ", "ﬆ", "u0", "U0", "u1", "é", "名前", "0", "00", "[object Object]",
]  # fmt: skip


_padding = st.text(alphabet=st.sampled_from(" \t\n\u00a0\u2003\u3000x"), max_size=3)
_spelled = st.sampled_from(sorted(PLACEHOLDERS)).flatmap(
    lambda p: st.lists(st.booleans(), min_size=len(p), max_size=len(p)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(p, upper, strict=True))
    )
)
_placeholder_like = st.builds(lambda a, p, b: a + p + b, _padding, _spelled, _padding)


@given(
    st.one_of(
        st.sampled_from(TRICKY_IDS),
        _placeholder_like,
        st.text(alphabet=st.sampled_from("nulsStTkK\u017f\u212a\ufb06 \u2003"), max_size=6),
        st.text(max_size=20),
    )
)
def test_sql_placeholders_equal_is_placeholder(con, value):
    found = con.execute("SELECT ep_is_placeholder(?)", [value]).fetchall()[0][0]
    assert found == is_placeholder(value)


@given(st.one_of(st.sampled_from(["alice", "", "é", "名前", "😀", "a" * 300]), st.text()))
def test_vectorised_uuid5_equals_python(con, name):
    sql = f"SELECT {uuid5_sql('d')} FROM (SELECT {kpid_digest_sql('?')} AS d)"
    found = con.execute(sql, [name]).fetchall()[0][0]
    assert found == str(uuid.uuid5(KPID_NAMESPACE, name))


_users = st.sampled_from(["u0", "u1", "u2", "u3", "u4", "U0", "null", " Guest ", "u\u017fer"])
_anons = st.sampled_from(["a0", "a1", "a2", "a3", "u0", "", "guest", "u\u017fer"])
_rows = st.tuples(
    st.sampled_from(["identify", "track", "alias", "page"]),
    st.one_of(st.none(), _anons),
    st.one_of(st.none(), _users),
    st.one_of(st.none(), _users),
    st.integers(0, 4).map(at),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_rows, max_size=30))
def test_random_events_match_the_rules(con, raw_rows):
    assert_same_as_rules(con, raw_rows)


# -- persistence ---------------------------------------------------------------------------


def _generations(lake) -> set[bytes]:
    root = os.path.join(lake, "identity")
    return {pq.read_schema(os.path.join(root, f"{n}.parquet")).metadata[b"generation"]
            for n in TABLES}  # fmt: skip


def _write(lake: str, result, txn_id: str = "") -> str:
    """Write `result` as the lake's identity in a transaction of its own."""
    txn = LakeTransaction.begin(lake, txn_id or uuid.uuid4().hex, "identity")
    generation = write_identity(txn, result)
    txn.commit()
    return generation


def _owned_by_a_dead_process(lake: str, txn_id: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    owner = {"host": socket.gethostname(), "pid": proc.pid, "job": "identity"}
    (Path(lake) / "_staging" / txn_id / T.OWNER).write_text(json.dumps(owner))


def _rows(table: pa.Table) -> list[tuple]:
    return sorted(tuple(row.values()) for row in table.to_pylist())


def _result(con, *groups):
    return build_identity(con, table_of(events_of_links(events(*groups))))


def test_write_then_read_round_trip(con, tmp_path):
    lake = str(tmp_path)
    result = _result(con, identify("a1", "alice", 1), identify("a1", "bob", 2))
    generation = _write(lake, result, "t1")
    tables = read_identity(lake)
    for name in TABLES:
        assert _rows(tables[name]) == _rows(result.table(name)), name
    assert _generations(lake) == {generation.encode()}
    kpid_map = read_kpid_map(lake)
    assert kpid_map.schema.names == ["kind", "id", "kpid"]
    assert all(t == pa.string() for t in kpid_map.schema.types)
    assert sorted(os.listdir(os.path.join(lake, "identity"))) == sorted(
        [T.MARKER, *(f"{n}.parquet" for n in TABLES)]
    )
    record = T.read_commit(lake, "t1")["identity"]
    assert record == {"generation": generation, "counts": result.counts}


def test_a_committed_identity_interrupted_before_its_swap_is_finished(con, tmp_path, monkeypatch):
    lake = str(tmp_path)
    old = _write(lake, _result(con, identify("a1", "alice", 1)))
    new_result = _result(con, identify("a1", "bob", 1), identify("a2", "carol", 2))
    txn = LakeTransaction.begin(lake, "t-new", "identity")
    new = write_identity(txn, new_result)

    def crash(lake: str, record: dict) -> None:
        raise KeyboardInterrupt  # died right after writing the commit record

    monkeypatch.setattr(T, "apply_commit", crash)
    with pytest.raises(KeyboardInterrupt):
        txn.commit()
    monkeypatch.undo()
    assert _generations(lake) == {old.encode()}  # readers: the whole old set until applied
    _owned_by_a_dead_process(lake, "t-new")
    assert recover_transactions(lake) == ["completed the commit of interrupted run t-new"]
    assert _generations(lake) == {new.encode()}
    assert _rows(read_identity(lake)["kpid_map"]) == _rows(new_result.table("kpid_map"))
    assert old != new


def test_a_build_that_crashed_before_its_commit_is_discarded(con, tmp_path):
    lake = str(tmp_path)
    old = _write(lake, _result(con, identify("a1", "alice", 1)))
    write_identity(LakeTransaction.begin(lake, "t-dead"), _result(con, identify("a1", "bob", 1)))
    assert sorted(read_kpid_map(lake)["id"].to_pylist()) == ["a1", "alice"]
    assert _generations(lake) == {old.encode()}
    _owned_by_a_dead_process(lake, "t-dead")
    assert recover_transactions(lake) == ["removed the staged files of abandoned run t-dead"]
    newer = _write(lake, _result(con, identify("a9", "zoe", 1)))
    assert _generations(lake) == {newer.encode()}
    assert sorted(read_kpid_map(lake)["id"].to_pylist()) == ["a9", "zoe"]


def test_build_from_relations_one_after_another(con):
    rows = events_of_links(events(identify("a1", "alice", 1), alias("old", "alice", 2)))
    con.register("some_events", table_of(rows))
    result = build_identity(con, con.sql("SELECT * FROM some_events"))
    assert result.counts["users"] == 2 and result.counts["anonymous"] == 1
    # The same session builds from another relation (its source view is replaced).
    again = build_identity(con, con.sql("SELECT * FROM some_events WHERE type = 'identify'"))
    assert again.counts["users"] == 1


def test_reading_a_lake_without_identity_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="kpid_map"):
        read_kpid_map(str(tmp_path))


def test_writing_needs_a_local_lake(con):
    with pytest.raises(ValueError, match="local lake"):
        write_identity(
            LakeTransaction("gs://bucket/lake", "t"), _result(con, identify("a1", "alice", 1))
        )


def test_build_from_lake_files_and_stitch_a_partition(con, tmp_path):
    rows = events_of_links(
        events(track("dev", None, 0), identify("dev", "alice", 1), alias("old", "alice", 2))
    )
    for day, part in ((1, rows[:2]), (2, rows[2:])):
        folder = tmp_path / "events" / f"date=2026-01-0{day}"
        folder.mkdir(parents=True)
        extra = table_of(part).append_column("kpid", pa.array([None] * len(part), pa.string()))
        pq.write_table(extra.append_column("other", pa.array(range(len(part)))), folder / "p.parquet")  # fmt: skip
    result = build_identity(con, str(tmp_path / "events" / "date=*" / "*.parquet"))
    assert result.counts["users"] == 2 and result.counts["anonymous"] == 1
    _write(str(tmp_path), result)
    partition = pq.read_table(tmp_path / "events" / "date=2026-01-01" / "p.parquet")
    stitched = assign_kpids(con, partition, read_kpid_map(str(tmp_path)))
    assert stitched.column_names == partition.column_names
    assert stitched.drop_columns(["kpid"]).equals(partition.drop_columns(["kpid"]))
    alice = str(uuid.uuid5(KPID_NAMESPACE, "alice"))
    assert stitched["kpid"].to_pylist() == [alice, alice]  # the page view before login too


@pytest.mark.parametrize(
    ("kwargs", "memory", "threads"),
    [({}, "1GB", 2), ({"memory_limit": "300MB", "threads": 1}, "300MB", 1)],
    ids=["defaults", "given"],
)
def test_the_build_session_is_bounded_and_spills_to_disk(tmp_path, kwargs, memory, threads):
    """The identity build's session: a memory limit, its threads, a spill folder on disk."""
    session = identity_connection(**kwargs)

    def setting(name: str) -> object:
        return session.execute(f"SELECT current_setting('{name}')").fetchone()[0]

    limit = duckdb.connect(config={"memory_limit": memory}).execute(
        "SELECT current_setting('memory_limit')"
    )
    assert setting("memory_limit") == limit.fetchone()[0]
    assert setting("threads") == threads
    assert setting("preserve_insertion_order") is False
    spill = setting("temp_directory")
    assert os.path.isdir(spill) and os.path.basename(spill).startswith("eventpipe-identity-")
    given = identity_connection(temp_directory=str(tmp_path / "spill"), **kwargs)
    assert given.execute("SELECT current_setting('temp_directory')").fetchone()[0] == str(
        tmp_path / "spill"
    )


def test_a_build_reports_its_counts_and_steps_and_keeps_only_its_outputs(tmp_path, caplog):
    """Intermediate tables are dropped once used (bounded memory); the counts and step
    times go to the job's summary."""
    caplog.set_level(logging.INFO, logger="eventpipe.identity.graph")
    session = identity_connection(temp_directory=str(tmp_path))
    rows = events_of_links(
        events(track("dev", "alice", 1), identify("dev", "bob", 2), alias("old", "alice", 3))
    )
    result = build_identity(session, table_of(rows))
    assert result.counts == {
        "links": 3, "alias_nodes": 2, "users": 3, "aliases": 1, "conflicts": 1,
        "anonymous": 1, "kpid_map": 4,
    }  # fmt: skip
    assert list(result.seconds) == ["links", "users_and_aliases", "alias_components", "profiles"]
    assert all(0 <= s < 3600 for s in result.seconds.values())
    kept = session.execute(
        "SELECT table_name FROM duckdb_tables() UNION ALL "
        "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
    ).fetchall()
    assert [name for (name,) in kept] == sorted(
        [f"ep_{name}" for name in TABLES] + ["ep_first_user"]
    )
    assert result.table("kpid_map").schema == KPID_MAP_SCHEMA
    [logged] = [r.getMessage() for r in caplog.records if r.name == "eventpipe.identity.graph"]
    assert logged == (
        f"identity graph: {result.counts}; alias components in {result.rounds} rounds; "
        f"seconds {result.seconds}"
    )


def _chain(length: int) -> pa.Table:
    """Events of an alias chain c0 -> c1 -> ... -> c<length>."""
    links = [link for i in range(length) for link in alias(f"c{i}", f"c{i + 1}", i % 7)]
    return table_of(events_of_links(links))


def test_alias_components_take_the_rounds_they_report_and_no_more(con, monkeypatch):
    """`rounds` counts the rounds run, the last one changing nothing (1 without aliases);
    MAX_ROUNDS rounds are allowed, one fewer than needed is a clear error."""
    from eventpipe.identity import graph

    plain = build_identity(con, table_of(events_of_links(events(track("dev", "alice", 1)))))
    assert plain.rounds == 1
    needed = build_identity(con, _chain(40)).rounds
    assert 3 <= needed <= 10  # pointer jumping over 41 nodes
    monkeypatch.setattr(graph, "MAX_ROUNDS", needed)
    assert build_identity(con, _chain(40)).rounds == needed
    monkeypatch.setattr(graph, "MAX_ROUNDS", needed - 1)
    with pytest.raises(
        RuntimeError, match=f"^alias components did not converge in {needed - 1} rounds$"
    ):
        build_identity(con, _chain(40))


def test_step_times_are_seconds_to_the_millisecond(tmp_path):
    result = build_identity(identity_connection(temp_directory=str(tmp_path)), _chain(40))
    assert result.seconds and all(
        isinstance(s, float) and round(s, 3) == s for s in result.seconds.values()
    ), result.seconds


@pytest.mark.parametrize("case", ["kept", "gone"])
def test_the_spill_folder_is_deleted_at_exit_even_when_gone_already(case, monkeypatch):
    """The build session's own spill folder is deleted at exit (the function it registers
    with atexit is run here); one deleted already is no error."""
    import atexit
    import shutil

    at_exit = []
    monkeypatch.setattr(atexit, "register", lambda *call: at_exit.append(call))
    session = identity_connection()
    spill = session.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    session.close()
    assert os.path.basename(spill).startswith("eventpipe-identity-") and os.path.isdir(spill)
    if case == "gone":
        shutil.rmtree(spill)
    [(function, *args)] = at_exit
    function(*args)  # raises if the removal is not quiet
    assert not os.path.exists(spill)
