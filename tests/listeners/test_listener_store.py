"""The listeners' SQLite store: size and omitted, reads that empty, idle expiry (an
injected clock), the per-workspace limit, and workspaces that never see each other's."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from listener_support import Clock

from eventpipe.listeners.store import (
    MAX_LISTENERS,
    ListenerStore,
    Matched,
    TooManyListeners,
    store_beside,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> ListenerStore:
    return ListenerStore(tmp_path / "_listeners.sqlite", clock=clock)


def _events(*names: str) -> list[bytes]:
    return [f'{{"event":"{n}"}}'.encode() for n in names]


def _matched(*names: str) -> Matched:
    return Matched(_events(*names), len(names))


def test_a_listener_holds_its_size_counts_the_rest_and_a_read_empties_it(store: ListenerStore):
    listener = store.create(1, None, 2, None, 600)
    store.capture({listener: _matched("a")})
    store.capture({listener: _matched("b", "c", "d")})
    observed = store.read(listener, 1)
    assert observed is not None
    assert observed.events == _events("a", "b")  # the first ones, in order
    assert observed.omitted == 2
    after = store.read(listener, 1)
    assert after is not None and (after.events, after.omitted) == ([], 0)
    store.capture({listener: _matched("e")})
    again = store.read(listener, 1)
    assert again is not None and (again.events, again.omitted) == (_events("e"), 0)


def test_matches_past_those_sent_are_counted_as_omitted(store: ListenerStore):
    listener = store.create(1, None, 3, None, 600)
    store.capture({listener: Matched(_events("a", "b", "c"), 7)})  # the tap sends `size`
    observed = store.read(listener, 1)
    assert observed is not None and (observed.events, observed.omitted) == (
        _events("a", "b", "c"),
        4,
    )


def test_another_workspace_neither_reads_nor_deletes_a_listener(store: ListenerStore):
    listener = store.create(1, None, 10, None, 600)
    store.capture({listener: _matched("a")})
    assert store.read(listener, 2) is None
    store.delete(listener, 2)
    observed = store.read(listener, 1)
    assert observed is not None and observed.events == _events("a")


def test_delete_removes_the_listener_and_its_events_and_ignores_unknown_ids(
    store: ListenerStore,
):
    listener = store.create(1, None, 10, None, 600)
    store.capture({listener: _matched("a")})
    store.delete("no-such-listener", 1)
    store.delete(listener, 1)
    assert store.read(listener, 1) is None
    store.capture({listener: _matched("b")})  # a collector that had not seen the delete
    db = store.reader()
    assert db is not None
    assert db.execute("SELECT count(*) FROM captured").fetchone()[0] == 0


def test_a_workspace_has_at_most_the_limit_of_listeners(store: ListenerStore):
    for _ in range(MAX_LISTENERS):
        store.create(1, None, 10, None, 600)
    with pytest.raises(TooManyListeners):
        store.create(1, None, 10, None, 600)
    store.create(2, None, 10, None, 600)  # another workspace has its own limit


def test_a_listener_nobody_reads_expires_and_frees_its_place(store: ListenerStore, clock: Clock):
    kept = store.create(1, None, 10, None, 100)
    for _ in range(MAX_LISTENERS - 1):
        store.create(1, None, 10, None, 100)
    clock.now += 60
    assert store.read(kept, 1) is not None  # a read restarts its idle time
    clock.now += 60  # the others were last seen 120 s ago, `kept` 60 s ago
    store.create(1, None, 10, None, 100)  # places freed by the abandoned ones
    assert store.read(kept, 1) is not None
    db = store.reader()
    assert db is not None
    assert [x.id for x in store.live(db) if x.id == kept] == [kept]
    assert len(store.live(db)) == 2
    clock.now += 101
    assert store.read(kept, 1) is None
    assert store.live(db) == []


def test_expired_listeners_lose_their_captured_events(store: ListenerStore, clock: Clock):
    listener = store.create(1, None, 10, None, 10)
    store.capture({listener: _matched("a")})
    clock.now += 11
    store.create(1, None, 10, None, 10)  # purges
    db = store.reader()
    assert db is not None
    assert db.execute("SELECT count(*) FROM captured").fetchone()[0] == 0


def test_live_lists_what_the_collectors_need(store: ListenerStore, clock: Clock):
    listener = store.create(7, 42, 10, '{"logical":"and","conditions":[]}', 30)
    db = store.reader()
    assert db is not None
    (found,) = store.live(db)
    assert (found.id, found.workspace, found.connection) == (listener, 7, 42)
    assert found.filter == '{"logical":"and","conditions":[]}'
    assert found.expires == clock.now + 30


def test_a_lake_without_listeners_has_no_file(tmp_path: Path):
    store = ListenerStore(tmp_path / "lake" / "_listeners.sqlite")
    assert store.reader() is None
    assert not store.path.exists()


def test_one_store_per_file_in_a_process(tmp_path: Path):
    catalog = tmp_path / "_catalog.sqlite"
    assert store_beside(catalog) is store_beside(str(catalog))
    assert store_beside(catalog).path == (tmp_path / "_listeners.sqlite").resolve()


def test_a_listener_holds_at_most_its_byte_budget_but_always_one_event(
    store: ListenerStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("eventpipe.listeners.store.MAX_HELD_BYTES", 10)
    listener = store.create(1, None, 10, None, 600)
    huge, small = b"x" * 15, b"y" * 5
    store.capture({listener: Matched([huge, small], 2)})
    observed = store.read(listener, 1)
    assert observed is not None and (observed.events, observed.omitted) == ([huge], 1)
    store.capture({listener: Matched([b"a" * 4, b"b" * 4], 2)})
    store.capture({listener: Matched([b"c" * 4], 1)})  # would pass 10 bytes
    observed = store.read(listener, 1)
    assert observed is not None
    assert (observed.events, observed.omitted) == ([b"a" * 4, b"b" * 4], 1)


def test_forget_leaves_no_byte_of_the_event_while_another_process_holds_the_file(tmp_path):
    """An erasure while a server keeps the listeners file open: neither the database nor its
    write-ahead log keeps the forgotten event's bytes."""
    path = tmp_path / "_listeners.sqlite"
    store = ListenerStore(path)
    listener = store.create(1, None, 10, None, 600.0)
    secret, other = b'{"userId":"erase-me-0042"}', b'{"userId":"keep-me"}'
    store.capture({listener: Matched([secret, other], 2)})
    with closing(sqlite3.connect(path)) as server:  # a serving process's open connection
        server.execute("SELECT count(*) FROM captured").fetchone()
        assert store.forget(lambda event: event["userId"] == "erase-me-0042") == 1
        files = [p for p in tmp_path.iterdir() if p.name.startswith(path.name)]
        assert any(p.name.endswith("-wal") for p in files)  # the log is still there
        assert not any(b"erase-me-0042" in p.read_bytes() for p in files)
    assert store.read(listener, 1).events == [other]
