"""What bounds the lake backend of the read API: memory, time and concurrent queries.

- `memory_limit`: DuckDB's memory for every query of the server together (one in-memory
  database; DuckDB's default is 80% of RAM), without spilling to disk. A query that
  needs more fails and is answered 503.
- `statement_timeout`: a request's queries are interrupted after this many seconds (503).
- `max_queries`: requests that query the lake at once; others wait for a slot up to
  three statement timeouts (then 503). Each running query holds buffers and allocator arenas of its own:
  40 at once (the server's thread pool) held ~0.5 GB on a 200k-event lake, 4 ~0.2 GB.

The server's memory is then about its baseline + `memory_limit` at most, whatever the
requests; see `eventpipe serve --help`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

DEFAULT_MEMORY_LIMIT = "1GB"
DEFAULT_STATEMENT_TIMEOUT = 10.0
DEFAULT_MAX_QUERIES = 4
_INTERRUPT_EVERY = 0.02  # seconds between interrupts once expired (each statement resets it)


@dataclass(frozen=True)
class ServingLimits:
    """The bounds of one lake reader."""

    memory_limit: str = DEFAULT_MEMORY_LIMIT
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT
    max_queries: int = DEFAULT_MAX_QUERIES

    @property
    def queue_timeout(self) -> float:
        """How long a request waits for a query slot: three statement timeouts (50 clients
        while `compact` ran waited up to ~15 s for one of 4 slots on 2 cores)."""
        return 3 * self.statement_timeout


class ServerBusy(Exception):
    """A request refused or stopped by a limit (HTTP 503): `message` says which."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Deadline:
    """Interrupts `cursor` once `seconds` have passed, and again every 20 ms until the
    request ends (DuckDB forgets an interrupt when the next statement starts)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, seconds: float) -> None:
        self.cursor = cursor
        self.seconds = seconds
        self.expired = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="query-deadline", daemon=True)

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        self.expired = True
        while not self._done.is_set():
            self.cursor.interrupt()
            self._done.wait(_INTERRUPT_EVERY)

    def __enter__(self) -> Deadline:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()
