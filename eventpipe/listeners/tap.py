"""The collector's side of the listeners: which requests are listened to, and capturing
their events off the event loop.

`ListenerTap.listened(workspace, connection)` is the collector's one question per accepted
request: two set lookups in a snapshot of the live listeners, refreshed when this process
changes a listener, when one expires, and at most every `refresh_seconds` otherwise (after
a look at SQLite's `data_version`, which changes when another process commits). Only a
listened request costs more: `offer` queues its landing envelope for the tap's worker
thread, which runs the import's stage chain (`StageChain`, opened on first use) on the
queued envelopes together, matches the events against the listeners' filters
(`matching`) and stores the matches (`ListenerStore.capture`). The answer to the request
never waits for it.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pyarrow as pa

from eventpipe.api.filters import Predicate
from eventpipe.core.duck import connect
from eventpipe.listeners.matching import (
    Watch,
    compile_listener_filter,
    in_arrival_order,
    match_events,
    watch,
)
from eventpipe.listeners.store import MAX_LISTENERS, Listener, ListenerStore
from eventpipe.schemas.records import RECORDS_SCHEMA
from eventpipe.transforms.chain import StageChain
from eventpipe.transforms.enrich import EnrichOptions

log = logging.getLogger(__name__)

SOURCE = "listener"
REFRESH_SECONDS = 1.0
MAX_QUEUED_BYTES = 64 * 1024 * 1024  # envelopes waiting for the worker; more are not observed
MAX_GROUP_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    """The live listeners, as the collector's lookup needs them."""

    listeners: tuple[Listener, ...] = ()
    whole_workspaces: frozenset[int] = frozenset()  # with a listener of every connection
    connections: frozenset[int] = frozenset()  # listened to by a listener of one connection
    expires: float = float("inf")  # the first listener's expiry: refresh then

    @classmethod
    def of(cls, listeners: list[Listener]) -> Snapshot:
        return cls(
            tuple(listeners),
            frozenset(x.workspace for x in listeners if x.connection is None),
            frozenset(x.connection for x in listeners if x.connection is not None),
            min((x.expires for x in listeners), default=float("inf")),
        )


PURGE = "purge"  # a worker task: remove expired listeners and their events


@dataclass
class _Offer:
    line: bytes
    workspace: int
    connection: int


@dataclass
class TapStats:
    """What the tap did (logged when it stops)."""

    requests: int = 0  # handled: captured, or failed
    events: int = 0
    matched: int = 0  # events matched by a listener (held, or counted as omitted)
    dropped: int = 0  # requests not observed: the worker's queue was full
    failures: int = 0
    cpu_s: float = 0.0
    groups: int = 0


class ListenerTap:
    """Listened requests -> captured events. `clock` is monotonic, `wall` unix time."""

    def __init__(
        self,
        store: ListenerStore,
        enrich: EnrichOptions | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.enrich = enrich  # None: events as validated and normalised (--no-enrich)
        self.refresh_seconds = refresh_seconds
        self.max_queued_bytes = max_queued_bytes
        self._clock = clock
        self._wall = wall
        self.snapshot = Snapshot()
        self._next_refresh = 0.0
        self._seen_changes = -1
        self._data_version: int | None = None
        self._reader: sqlite3.Connection | None = None
        self._refresh_lock = threading.Lock()
        self._predicates: dict[tuple[str, str | None], Predicate | None] = {}
        self._queue: queue.SimpleQueue[_Offer | str | None] = queue.SimpleQueue()
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._last_drop_log = float("-inf")
        self.stats = TapStats()

    # -- the event loop's side: cheap

    def listened(self, workspace: int, connection: int) -> bool:
        """Whether a live listener observes events of `connection` of `workspace`."""
        snapshot = self._current()
        return workspace in snapshot.whole_workspaces or connection in snapshot.connections

    def offer(self, line: bytes, workspace: int, connection: int) -> None:
        """Queue an accepted request's landing envelope for capture (never blocks)."""
        with self._bytes_lock:
            if self._queued_bytes + len(line) > self.max_queued_bytes:
                self.stats.dropped += 1
                self._log_drop()
                return
            self._queued_bytes += len(line)
        self._ensure_started()
        self._queue.put(_Offer(line, workspace, connection))

    def _current(self) -> Snapshot:
        now = self._clock()
        changed = self.store.changes != self._seen_changes
        expired = self._wall() > self.snapshot.expires
        if changed or expired or now >= self._next_refresh:
            with self._refresh_lock:  # the event loop and the worker both ask
                self._refresh(now, force=changed or expired)
            if expired:  # delete what it held, off the event loop
                self._ensure_started()
                self._queue.put(PURGE)
        return self.snapshot

    def _refresh(self, now: float, force: bool) -> None:
        self._seen_changes = self.store.changes
        self._next_refresh = now + self.refresh_seconds
        try:
            if self._reader is None:
                self._reader = self.store.reader()
                if self._reader is None:  # no listener was ever created in this lake
                    self.snapshot = Snapshot()
                    return
            version = self._reader.execute("PRAGMA data_version").fetchone()[0]
            if force or version != self._data_version:
                self._data_version = version
                self.snapshot = Snapshot.of(self.store.live(self._reader))
        except Exception:  # the file is locked past its timeout, damaged: observe nothing
            log.exception("reading the listeners failed; listeners observe nothing meanwhile")
            self.snapshot = Snapshot()
            if self._reader is not None:  # open a new connection at the next refresh
                self._reader.close()
                self._reader = None

    def _log_drop(self) -> None:
        now = self._clock()
        if now - self._last_drop_log >= 10:
            self._last_drop_log = now
            log.warning(
                "listeners: %d requests not observed so far (more than %d bytes queued)",
                self.stats.dropped,
                self.max_queued_bytes,
            )

    # -- the worker thread

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="listener-tap", daemon=True
                    )
                    self._thread.start()

    def stop(self) -> None:
        """Capture what is queued, then stop the worker (if it ever started)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            log.info(
                "listeners: %d requests in %d groups, %d events observed, %d matched, %d not "
                "observed (queue full), %d failures; %.2f CPU-s",
                self.stats.requests,
                self.stats.groups,
                self.stats.events,
                self.stats.matched,
                self.stats.dropped,
                self.stats.failures,
                self.stats.cpu_s,
            )
        if self._reader is not None:
            self._reader.close()
            self._reader: sqlite3.Connection | None = None
        self._refresh_lock = threading.Lock()
        self._predicates: dict[tuple[str, str | None], Predicate | None] = {}

    def _run(self) -> None:
        started = time.thread_time()
        chain: StageChain | None = None
        con = None
        try:
            stop = False
            while not stop:
                group, stop = self._take_group()
                if not group:
                    continue
                try:
                    if chain is None:
                        chain = StageChain(SOURCE, datetime.now(UTC), enrich=self.enrich)
                        con = connect()
                    self._capture(chain, con, group)
                except Exception:  # a bug or a locked file: these requests go unobserved
                    self.stats.failures += 1
                    log.exception("listeners: capturing %d requests failed", len(group))
                self.stats.requests += len(group)
        finally:
            if chain is not None:
                chain.close()
            if con is not None:
                con.close()
            self.stats.cpu_s = time.thread_time() - started

    def _take_group(self) -> tuple[list[_Offer], bool]:
        """Block for the first offer, then take every one already queued (up to
        MAX_GROUP_BYTES); purge requests are done on the way. Returns (group, stop asked)."""
        group: list[_Offer] = []
        size = 0
        while size < MAX_GROUP_BYTES:
            try:
                item = self._queue.get() if not group else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return self._taken(group), True
            if item == PURGE:
                self._purge()
                continue
            assert isinstance(item, _Offer)
            group.append(item)
            size += len(item.line)
        return self._taken(group), False

    def _purge(self) -> None:
        try:
            self.store.purge()
        except sqlite3.Error:
            log.exception("listeners: removing expired listeners failed (the next write will)")

    def _taken(self, group: list[_Offer]) -> list[_Offer]:
        with self._bytes_lock:
            self._queued_bytes -= sum(len(o.line) for o in group)
        return group

    def _capture(self, chain: StageChain, con: object, group: list[_Offer]) -> None:
        self.stats.groups += 1
        watches = self._watches(group)
        # Convert no more events than each listener can hold now: the others are counted.
        room = self.store.room([w.id for w in watches])
        watches = [replace(w, limit=min(w.limit, room[w.id])) for w in watches if w.id in room]
        if not watches:  # the listeners went away meanwhile
            return
        n = len(group)
        records = pa.Table.from_arrays(
            [
                pa.array([SOURCE] * n, pa.string()),
                pa.array(range(n), pa.int64()),
                pa.array([0] * n, pa.int32()),
                pa.array([o.line.decode() for o in group], pa.string()),
            ],
            schema=RECORDS_SCHEMA,
        )
        events = chain.run(records).events
        self.stats.events += events.num_rows
        if not events.num_rows:
            return
        matches = match_events(con, in_arrival_order(events), watches)  # type: ignore[arg-type]
        self.store.capture(matches)
        self.stats.matched += sum(m.count for m in matches.values())

    def _watches(self, group: list[_Offer]) -> list[Watch]:
        """The listeners of the group's workspaces, each restricted to the connections it
        may see among the group's (its own one, or its workspace's)."""
        by_workspace: dict[int, set[int]] = {}
        for offer in group:
            by_workspace.setdefault(offer.workspace, set()).add(offer.connection)
        watches = []
        for listener in self._current().listeners:
            seen = by_workspace.get(listener.workspace, set())
            if listener.connection is not None:
                seen = seen & {listener.connection}
            if seen:
                predicate = self._compiled(listener)
                watches.append(watch(listener.id, predicate, seen, listener.size))
        return watches

    def _compiled(self, listener: Listener) -> Predicate | None:
        key = (listener.id, listener.filter)
        if key not in self._predicates:
            if len(self._predicates) >= 4 * MAX_LISTENERS:
                self._predicates.clear()
            self._predicates[key] = compile_listener_filter(listener.filter)
        return self._predicates[key]
