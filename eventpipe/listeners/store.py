"""The listeners' shared state: one SQLite file beside the catalog (`LAKE/_listeners.sqlite`).

Every process of a lake (`serve`, `serve --workers N`, several collectors) opens the same
file, in WAL mode with a busy timeout, so a listener created through one process captures
the events any process accepts, and any process returns them. Every write is one
`BEGIN IMMEDIATE` transaction on its own connection.

A listener holds at most `size` events (the first that matched since it was last read)
and counts the other matches as `omitted`; reading it returns them and empties it. It is
removed once nobody has created or read it for `idle_seconds` (stored per listener, so
every process agrees); expired listeners are purged by the next create, read or capture.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from eventpipe.core.sqlite import write_transaction

LISTENERS_FILE = "_listeners.sqlite"
SCHEMA_VERSION = 1
MAX_LISTENERS = 100  # per workspace (seed 000)
MAX_SIZE = 1000
DEFAULT_SIZE = 10
DEFAULT_IDLE_SECONDS = 600.0
MAX_HELD_BYTES = 32 * 1024 * 1024  # per listener: bounds a read's answer (and memory)

SCHEMA = """
CREATE TABLE listeners (
    id TEXT PRIMARY KEY,
    workspace INTEGER NOT NULL,
    connection INTEGER,
    size INTEGER NOT NULL CHECK (size BETWEEN 1 AND 1000),
    filter TEXT,
    idle_seconds REAL NOT NULL,
    seen REAL NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    held_bytes INTEGER NOT NULL DEFAULT 0,
    omitted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX listeners_workspace ON listeners (workspace);
CREATE TABLE captured (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    listener TEXT NOT NULL,
    event BLOB NOT NULL
);
CREATE INDEX captured_listener ON captured (listener, seq);
"""


class TooManyListeners(Exception):
    """The workspace already has MAX_LISTENERS live listeners."""


@dataclass(frozen=True)
class Listener:
    """A live listener as the collectors need it: whose events, which filter (JSON text)."""

    id: str
    workspace: int
    connection: int | None
    filter: str | None
    expires: float  # unix time after which it is gone unless read
    size: int = DEFAULT_SIZE


class Matched(NamedTuple):
    """A listener's matches in one capture: the JSON texts of the first ones (at least
    as many as it can hold), and how many matched in all."""

    events: Sequence[bytes]
    count: int


@dataclass(frozen=True)
class Observed:
    """What a read returns: the held events (JSON texts of GET /v1/events' shape)."""

    events: list[bytes]
    omitted: int


class ListenerStore:
    """The listeners file at `path`. `clock` (unix seconds) is injectable for tests."""

    def __init__(
        self, path: str | Path, clock: Callable[[], float] = time.time, timeout: float = 30.0
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._timeout = timeout
        self._ready = False
        self._lock = threading.Lock()
        self.changes = 0  # listeners created or deleted by this process (the tap's hint)

    # -- connections

    def _connect(self, shared: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=not shared
        )
        db.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        db.execute("PRAGMA secure_delete = ON")  # a removed event's bytes do not stay behind
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        with self._lock:
            if self._ready:
                return
            db.execute("PRAGMA journal_mode = WAL")
            with write_transaction(db):
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                version = db.execute("SELECT max(version) FROM schema_version").fetchone()[0]
                if version is None:
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                elif version > SCHEMA_VERSION:
                    raise sqlite3.DatabaseError(
                        f"{self.path} has listeners schema version {version}; this eventpipe "
                        f"knows versions up to {SCHEMA_VERSION}"
                    )
            self._ready = True

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (creates the file on first use)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            self._prepare(db)
            with write_transaction(db):
                yield db

    def reader(self) -> sqlite3.Connection | None:
        """A read connection for `live`, usable from any thread one at a time (None while
        the file does not exist)."""
        if not self.path.exists():
            return None
        return self._connect(shared=True)

    # -- the routes

    def create(
        self,
        workspace: int,
        connection: int | None,
        size: int,
        filter_json: str | None,
        idle_seconds: float,
    ) -> str:
        """A new listener's id; TooManyListeners when the workspace has MAX_LISTENERS."""
        listener = str(uuid.uuid4())
        now = self._clock()
        with self._write() as db:
            _purge(db, now)
            count = db.execute(
                "SELECT count(*) FROM listeners WHERE workspace = ?", (workspace,)
            ).fetchone()[0]
            if count >= MAX_LISTENERS:
                raise TooManyListeners
            db.execute(
                "INSERT INTO listeners (id, workspace, connection, size, filter, idle_seconds, "
                "seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (listener, workspace, connection, size, filter_json, idle_seconds, now),
            )
        self.changes += 1
        return listener

    def read(self, listener: str, workspace: int) -> Observed | None:
        """The listener's held events and omitted count, then empties it and restarts its
        idle time; None when the workspace has no such live listener."""
        now = self._clock()
        with self._write() as db:
            _purge(db, now)
            found = db.execute(
                "SELECT omitted FROM listeners WHERE id = ? AND workspace = ?",
                (listener, workspace),
            ).fetchone()
            if found is None:
                return None
            db.execute(
                "UPDATE listeners SET held = 0, held_bytes = 0, omitted = 0, seen = ? WHERE id = ?",
                (now, listener),
            )
            rows = db.execute(
                "DELETE FROM captured WHERE listener = ? RETURNING seq, event", (listener,)
            ).fetchall()
        return Observed([event for _, event in sorted(rows)], found[0])

    def delete(self, listener: str, workspace: int) -> None:
        """Remove the workspace's listener; nothing when there is none."""
        with self._write() as db:
            gone = db.execute(
                "DELETE FROM listeners WHERE id = ? AND workspace = ? RETURNING id",
                (listener, workspace),
            ).fetchone()
            if gone is not None:
                db.execute("DELETE FROM captured WHERE listener = ?", (listener,))
        self.changes += 1

    def purge(self) -> None:
        """Remove the expired listeners and their events now (nothing without a file)."""
        if self.path.exists():
            with self._write() as db:
                _purge(db, self._clock())

    def forget(self, owns: Callable[[Any], bool]) -> int:
        """Delete the held events `owns` (given the event as JSON) says are a person's, as an
        erasure must; how many (0 without a file)."""
        if not self.path.exists():
            return 0
        with self._write() as db:
            rows = db.execute("SELECT seq, listener, event FROM captured").fetchall()
            gone = [(seq, who, len(event)) for seq, who, event in rows if owns(orjson.loads(event))]
            db.executemany("DELETE FROM captured WHERE seq = ?", [(seq,) for seq, _, _ in gone])
            db.executemany(
                "UPDATE listeners SET held = held - 1, held_bytes = held_bytes - ? WHERE id = ?",
                [(size, who) for _, who, size in gone],
            )
        if gone:  # the deleted pages' old images leave the write-ahead log too
            with closing(self._connect()) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(gone)

    # -- the collectors

    def live(self, db: sqlite3.Connection) -> list[Listener]:
        """Every unexpired listener, read on `db` (a `reader`)."""
        made = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'listeners'"
        ).fetchone()
        if made is None:  # the file is being created by another process
            return []
        rows = db.execute(
            "SELECT id, workspace, connection, filter, seen + idle_seconds, size FROM listeners "
            "WHERE seen + idle_seconds >= ?",
            (self._clock(),),
        ).fetchall()
        return [Listener(*row) for row in rows]

    def room(self, listeners: Sequence[str]) -> dict[str, int]:
        """How many more events each listener can hold now (absent: gone)."""
        if not listeners or not self.path.exists():
            return {}
        marks = ", ".join("?" * len(listeners))
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT id, size - held FROM listeners WHERE id IN ({marks})", list(listeners)
            ).fetchall()
        return {listener: max(0, left) for listener, left in rows}

    def capture(self, matches: Mapping[str, Matched]) -> None:
        """Add each listener's matching events (in order): the first ones, up to its size
        and MAX_HELD_BYTES (one event is always held, whatever its size), the others
        counted as omitted. Listeners gone meanwhile get nothing."""
        if not matches:
            return
        now = self._clock()
        with self._write() as db:
            _purge(db, now)
            for listener, (events, count) in matches.items():
                row = db.execute(
                    "SELECT size - held, held_bytes FROM listeners WHERE id = ?", (listener,)
                ).fetchone()
                if row is None or not count:
                    continue
                kept = _first_that_fit(events, row[0], row[1])
                db.executemany(
                    "INSERT INTO captured (listener, event) VALUES (?, ?)",
                    [(listener, event) for event in kept],
                )
                db.execute(
                    "UPDATE listeners SET held = held + ?, held_bytes = held_bytes + ?, "
                    "omitted = omitted + ? WHERE id = ?",
                    (len(kept), sum(map(len, kept)), count - len(kept), listener),
                )


def _first_that_fit(events: Sequence[bytes], room: int, held_bytes: int) -> Sequence[bytes]:
    """The longest prefix of `events` within `room` events and MAX_HELD_BYTES in all (the
    first event of an empty listener always fits)."""
    count, size = 0, held_bytes
    for event in events[: max(0, room)]:
        size += len(event)
        if size > MAX_HELD_BYTES and size != len(event):
            break
        count += 1
    return events[:count]


def _purge(db: sqlite3.Connection, now: float) -> None:
    """Remove the listeners nobody created or read within their idle time."""
    expired = db.execute(
        "DELETE FROM listeners WHERE seen + idle_seconds < ? RETURNING id", (now,)
    ).fetchall()
    if expired:
        db.executemany("DELETE FROM captured WHERE listener = ?", expired)


_STORES: dict[tuple[int, Path], ListenerStore] = {}


def store_beside(catalog_file: str | Path) -> ListenerStore:
    """This process's store of the listeners file beside `catalog_file` (one per file, so
    the routes and the collector of one process share its change count)."""
    path = Path(catalog_file).with_name(LISTENERS_FILE).resolve()
    key = (os.getpid(), path)
    if key not in _STORES:
        _STORES[key] = ListenerStore(path)
    return _STORES[key]
