"""The SQLite files beside the lake's data (the catalog, the listeners): one write
transaction shape for all of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on `db` (opened with `isolation_level=None`), taking the
    write lock at once (waits up to the busy timeout); rolled back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
