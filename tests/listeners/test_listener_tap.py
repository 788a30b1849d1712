"""The collector's tap in-process: the cheap lookup and when it sees a change, capture on
its thread through the real stage chain, a full queue, and expired listeners purged."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from listener_support import Clock

from eventpipe.listeners.store import ListenerStore
from eventpipe.listeners.tap import ListenerTap


def _envelope(connection: int, *names: str) -> bytes:
    batch = [
        {"type": "track", "event": n, "anonymousId": "a", "timestamp": "2026-12-01T10:00:00Z"}
        for n in names
    ]
    doc = {
        "receivedAt": "2026-12-05T10:00:00.000000+00:00",
        "ip": "127.0.0.1",
        "connectionId": connection,
        "body": {"batch": batch},
    }
    return orjson.dumps(doc) + b"\n"


def _poll(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def wall() -> Clock:
    return Clock(1_000_000.0)


@pytest.fixture
def monotonic() -> Clock:
    return Clock(0.0)


@pytest.fixture
def store(tmp_path: Path, wall: Clock) -> ListenerStore:
    return ListenerStore(tmp_path / "_listeners.sqlite", clock=wall)


@pytest.fixture
def tap(store: ListenerStore, wall: Clock, monotonic: Clock) -> Iterator[ListenerTap]:
    tap = ListenerTap(store, enrich=None, clock=monotonic, wall=wall)
    yield tap
    tap.stop()


def test_nothing_is_listened_to_without_a_listener(tap: ListenerTap, store: ListenerStore):
    assert not tap.listened(1, 10)
    assert not store.path.exists()  # looking does not create the file
    assert tap._thread is None  # nor the worker


def test_a_listener_made_in_this_process_is_seen_at_once(tap: ListenerTap, store: ListenerStore):
    assert not tap.listened(1, 10)
    store.create(1, None, 10, None, 600)
    store.create(2, 20, 10, None, 600)
    assert tap.listened(1, 10) and tap.listened(1, 11)  # every connection of workspace 1
    assert tap.listened(2, 20) and not tap.listened(2, 21)  # one connection of workspace 2
    assert not tap.listened(3, 30)


def test_another_processs_listener_is_seen_after_the_refresh_time(
    tap: ListenerTap, store: ListenerStore, monotonic: Clock, wall: Clock
):
    other = ListenerStore(store.path, clock=wall)  # another process's store of the file
    store.create(9, None, 10, None, 600)  # make the file; seen at once
    assert tap.listened(9, 1)
    other.create(1, None, 10, None, 600)
    assert not tap.listened(1, 10)  # within the refresh time: the snapshot holds
    monotonic.now += tap.refresh_seconds
    assert tap.listened(1, 10)


def test_an_offered_request_is_captured_in_order_with_its_filter(
    tap: ListenerTap, store: ListenerStore
):
    clicked = '{"logical":"and","conditions":[{"property":"event","operator":"is","values":["C"]}]}'
    only_clicked = store.create(1, None, 10, clicked, 600)
    everything = store.create(1, None, 2, None, 600)
    other_workspace = store.create(2, None, 10, None, 600)
    assert tap.listened(1, 10)
    tap.offer(_envelope(10, "C", "V", "C"), 1, 10)
    tap.offer(_envelope(10, "C"), 1, 10)
    _poll(lambda: tap.stats.requests == 2, "the capture")
    observed = store.read(only_clicked, 1)
    assert observed is not None
    assert [orjson.loads(e)["event"] for e in observed.events] == ["C", "C", "C"]
    held = store.read(everything, 1)
    assert held is not None
    assert ([orjson.loads(e)["event"] for e in held.events], held.omitted) == (["C", "V"], 2)
    nothing = store.read(other_workspace, 2)
    assert nothing is not None and nothing.events == [] and nothing.omitted == 0


def test_past_the_queue_bound_a_request_is_not_observed(store: ListenerStore, wall: Clock):
    tap = ListenerTap(store, enrich=None, max_queued_bytes=10, wall=wall)
    try:
        listener = store.create(1, None, 10, None, 600)
        assert tap.listened(1, 10)
        tap.offer(_envelope(10, "C"), 1, 10)
        assert tap.stats.dropped == 1
        observed = store.read(listener, 1)
        assert observed is not None and observed.events == []
    finally:
        tap.stop()


def test_an_expired_listener_is_no_longer_listened_to_and_its_events_are_deleted(
    tap: ListenerTap, store: ListenerStore, wall: Clock
):
    store.create(1, None, 10, None, 60)
    assert tap.listened(1, 10)
    tap.offer(_envelope(10, "C"), 1, 10)
    _poll(lambda: tap.stats.requests == 1, "the capture")
    reader = store.reader()
    assert reader is not None
    assert reader.execute("SELECT count(*) FROM captured").fetchone()[0] == 1
    wall.now += 61
    assert not tap.listened(1, 10)
    _poll(
        lambda: reader.execute("SELECT count(*) FROM listeners").fetchone()[0] == 0,
        "the tap to purge the expired listener",
    )
    assert reader.execute("SELECT count(*) FROM captured").fetchone()[0] == 0


def test_a_full_listener_only_counts_what_it_cannot_hold(tap: ListenerTap, store: ListenerStore):
    listener = store.create(1, None, 1, None, 600)
    assert tap.listened(1, 10)
    tap.offer(_envelope(10, "first"), 1, 10)
    _poll(lambda: tap.stats.requests == 1, "the first capture")
    tap.offer(_envelope(10, "second", "third"), 1, 10)
    _poll(lambda: tap.stats.requests == 2, "the second capture")
    observed = store.read(listener, 1)
    assert observed is not None
    assert ([orjson.loads(e)["event"] for e in observed.events], observed.omitted) == (["first"], 2)
    assert tap.stats.matched == 3
