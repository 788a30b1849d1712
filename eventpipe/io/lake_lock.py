"""The lake's writer lock and the recovery every writer runs first.

One writer at a time: every job that writes a lake (import, reprocess, identity,
compact, a future erase, each commit of the streaming job and each batch of the
continuous ingester) holds the lake's writer lock, an exclusive `flock` on
`LAKE/_LOCK`. The kernel releases it when the holder's process ends, however it
ends, so a killed job never leaves the lake locked. The file names the current holder (job, run, host, pid, since) so that a
writer that cannot get the lock says who has it. Readers (the read API) never take it.

Object stores have no `flock`: for a gs:// lake the lock is a local file keyed by
the lake's URL (`$TMPDIR/eventpipe-locks/`), which serialises the writers started
on one host (cron jobs, local runs), not writers on different machines.

`open_writer` = take the lock, then `recover_lake`: finish or discard the transactions
dead writers left (`io.lake_transaction`), so no writer starts from, or leaves, a
half-committed lake.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from eventpipe.io.lake_transaction import LakeBusy, recover_transactions
from eventpipe.schemas.lake_layout import is_remote

log = logging.getLogger(__name__)

LOCK_FILE = "_LOCK"
EXIT_BUSY = 75  # EX_TEMPFAIL: another writer holds the lake; try again later
POLL_SECONDS = 0.2


def lock_path(lake: str) -> str:
    """The lock file of `lake` (inside a local lake; a host-local file for a remote one)."""
    if not is_remote(lake):
        os.makedirs(lake, exist_ok=True)
        return os.path.join(lake, LOCK_FILE)
    folder = os.path.join(tempfile.gettempdir(), "eventpipe-locks")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, hashlib.sha256(lake.encode()).hexdigest()[:24] + ".lock")


def describe_holder(text: str) -> str:
    """The lock file's content as words."""
    try:
        holder = json.loads(text)
    except ValueError:
        return "another process (it has not said which yet)"
    return (
        f"{holder.get('job')} run {holder.get('run')} "
        f"(pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')})"
    )


@contextlib.contextmanager
def writer_lock(
    lake: str,
    job: str,
    run_id: str,
    wait: float | None = 0.0,
    on_wait: Callable[[str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[None]:
    """Hold the lake's writer lock for the block.

    `wait`: seconds to wait for it (None: as long as it takes). Raises LakeBusy,
    naming the holder, when it is still held after that, or when `cancel()` turns true
    while waiting. `on_wait` is called once with the holder's description when the lock
    is busy.
    """
    path = lock_path(lake)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, lake, wait, on_wait, cancel)
        holder = {"job": job, "run": run_id, "host": socket.gethostname(), "pid": os.getpid()}
        holder["since"] = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(
    fd: int,
    lake: str,
    wait: float | None,
    on_wait: Callable[[str], None] | None,
    cancel: Callable[[], bool] | None = None,
) -> None:
    started = time.monotonic()
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = describe_holder(os.pread(fd, 4096, 0).decode(errors="replace"))
        waited = time.monotonic() - started
        if wait is not None and waited >= wait:
            raise LakeBusy(
                f"the lake {lake} is being written by {holder}; gave up after {waited:.0f} s "
                "(--wait SECONDS to wait longer)"
            )
        if cancel is not None and cancel():
            raise LakeBusy(f"stopped while waiting for the lake {lake}, written by {holder}")
        if not told:
            told = True
            limit = "as long as it takes" if wait is None else f"up to {wait:g} s"
            log.warning("the lake %s is being written by %s: waiting %s", lake, holder, limit)
            if on_wait:
                on_wait(holder)
        time.sleep(POLL_SECONDS)


def recover_lake(lake: str, by_run: str = "", dry_run: bool = False) -> list[str]:
    """Finish or discard what dead writers left; returns what was done (the one recovery step).

    Committed transactions of dead writers are completed (and recorded in `_runs/` for
    the dead run), the staged files of those that never committed are removed (see
    `io.lake_transaction.recover_transactions`). Call it holding the writer lock
    (`open_writer` does).
    """
    return recover_transactions(lake, by_run, dry_run)


@contextlib.contextmanager
def open_writer(
    lake: str, job: str, run_id: str, wait: float | None = 0.0, dry_run: bool = False
) -> Iterator[list[str]]:
    """Hold the writer lock and run the recovery first: yields the recovery notes (for the
    job to report)."""
    with writer_lock(lake, job, run_id, wait):
        yield recover_lake(lake, run_id, dry_run)
