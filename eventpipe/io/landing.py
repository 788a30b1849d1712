"""The landing log: rotating JSONL segments of landing envelopes under `LAKE/landing/`.

Writers (collector processes) append whole lines with group commit: one write and one
`fdatasync` cover every request that arrived together; a segment's creation and its
closing rename are made durable with an fsync of the folder. Each process writes its own
segments, so several collectors share one landing log.

A segment's life: created as `NAME.jsonl.new`, locked (`flock`, held by its writer for as
long as it is open), renamed `NAME.jsonl.open`; closed by renaming it `NAME.jsonl` once
it is older than `segment_seconds` or bigger than `segment_bytes`. The kernel drops the
lock when the writer dies, however it dies: an `.open` segment whose lock another process
can take is closed too (`claim_closed_segments`), and a torn last line in it (a write cut
short) was never acknowledged: it is moved to `landing/torn/` and reported, never imported.

Done segments: the import stages a ledger (`landing/_done/RUN.json`, the segment names)
that its commit makes visible with its events (`done_ledger`), so a segment is done iff a
committed run lists it; then it is moved to `landing/imported/` or deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from eventpipe.core.files import fsync_folder, replace_durably
from eventpipe.core.ids import time_ordered_id

LANDING = "landing"
DONE = "_done"
IMPORTED = "imported"
TORN = "torn"
CLOSED_SUFFIX = ".jsonl"
OPEN_SUFFIX = ".jsonl.open"
NEW_SUFFIX = ".jsonl.new"
DEFAULT_SEGMENT_SECONDS = 60.0
DEFAULT_SEGMENT_BYTES = 64 * 2**20
STALE_NEW_SECONDS = 3600  # a `.new` file this old, unlocked and empty, is a dead writer's


def landing_folder(lake: str) -> str:
    """`LAKE/landing` (local lakes only)."""
    return os.path.join(lake, LANDING)


@dataclass
class _Segment:
    path: str  # the `.open` path
    fd: int
    opened: float  # monotonic seconds
    size: int = 0


class SegmentWriter:
    """One process's writer of the landing log. Not thread-safe: one thread calls it.

    `append(data)` returns once `data` (whole lines) is on disk. `close_if_due()` closes
    the open segment when it is older than `segment_seconds`; `due_in()` says when that is.
    """

    def __init__(
        self,
        folder: str,
        segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self.segment_seconds = segment_seconds
        self.segment_bytes = segment_bytes
        self.clock = clock
        self.segment: _Segment | None = None

    def _open(self) -> _Segment:
        os.makedirs(self.folder, exist_ok=True)
        name = f"{time_ordered_id(datetime.now(UTC))}-{os.getpid()}"
        new = os.path.join(self.folder, name + NEW_SUFFIX)
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # nobody else knows the file yet: never blocks
        path = os.path.join(self.folder, name + OPEN_SUFFIX)
        os.rename(new, path)
        fsync_folder(self.folder)
        return _Segment(path, fd, self.clock())

    def append(self, data: bytes) -> None:
        """Write `data` (complete JSONL lines) durably: returns after its fdatasync."""
        if self.segment is not None and self.segment.size + len(data) > self.segment_bytes:
            self.close()
        if self.segment is None:
            self.segment = self._open()
        segment = self.segment
        try:
            view = memoryview(data)
            while view:
                written = os.write(segment.fd, view)
                view = view[written:]
            os.fdatasync(segment.fd)
        except OSError:
            # Disk full, I/O error: nothing of `data` is acknowledged. Cut what part of it
            # was written (the next envelope must not follow half a line) and start the
            # next append in a new segment.
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, segment.size)
                os.fdatasync(segment.fd)
            with contextlib.suppress(OSError):
                self.close()
            raise
        segment.size += len(data)

    def due_in(self) -> float | None:
        """Seconds until the open segment must be closed (None: no segment open)."""
        if self.segment is None:
            return None
        return max(0.0, self.segment.opened + self.segment_seconds - self.clock())

    def close_if_due(self) -> None:
        """Close the open segment if it is `segment_seconds` old."""
        if self.due_in() == 0.0:
            self.close()

    def close(self) -> None:
        """Close the open segment (rename it `.jsonl`, then drop its lock)."""
        segment, self.segment = self.segment, None
        if segment is None:
            return
        try:
            os.rename(segment.path, segment.path.removesuffix(".open"))
            fsync_folder(self.folder)
        finally:  # the lock goes with the fd: an `.open` segment left is a dead writer's
            os.close(segment.fd)


@dataclass
class ClaimedSegments:
    """What `claim_closed_segments` found: closed segments to import and what it repaired."""

    paths: list[str] = field(default_factory=list)  # closed segments, oldest first
    done: list[str] = field(default_factory=list)  # closed segments a committed run lists
    torn: list[str] = field(default_factory=list)  # notes on torn last lines moved aside
    recovered: list[str] = field(default_factory=list)  # `.open` segments of dead writers


def _lock_if_free(path: str) -> int | None:
    """An fd holding the lock of `path`, None when another process holds it or it is gone."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _cut_torn_tail(folder: str, path: str, fd: int) -> str | None:
    """Move a last line that has no newline (a dead writer's torn write) to `torn/`."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            keep = start + cut + 1
            break
        end = start
    else:
        keep = 0
    tail = os.pread(fd, size - keep, keep)
    torn_folder = os.path.join(folder, TORN)
    os.makedirs(torn_folder, exist_ok=True)
    aside = os.path.join(torn_folder, os.path.basename(path).removesuffix(OPEN_SUFFIX) + ".tail")
    with open(aside, "wb") as handle:
        handle.write(tail)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_folder(torn_folder)
    os.ftruncate(fd, keep)
    os.fsync(fd)
    return (
        f"{os.path.basename(path)}: a torn last line of {len(tail):,} bytes (its writer died "
        f"while writing it, so it was never acknowledged) was skipped; kept in {aside}"
    )


def done_segments(lake: str) -> set[str]:
    """Names of the segments that committed runs list as imported."""
    folder = os.path.join(landing_folder(lake), DONE)
    names: set[str] = set()
    if os.path.isdir(folder):
        for entry in os.scandir(folder):
            if entry.name.endswith(".json"):
                with open(entry.path, "rb") as handle:
                    names.update(json.loads(handle.read())["segments"])
    return names


def claim_closed_segments(lake: str, now: float | None = None) -> ClaimedSegments:
    """The closed segments of the landing log, for the lake's one writer (the import).

    `.open` segments whose writer is gone are closed here (a torn last line moved aside);
    segments still being written are left alone; stale `.new` files of dead writers are
    removed. Segments a committed run lists are returned in `done`, not in `paths`.
    """
    folder = landing_folder(lake)
    claimed = ClaimedSegments()
    if not os.path.isdir(folder):
        return claimed
    now = time.time() if now is None else now
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.endswith(OPEN_SUFFIX) or entry.name.endswith(NEW_SUFFIX):
            fd = _lock_if_free(entry.path)
            if fd is None:
                continue  # its writer is alive
            try:
                if entry.name.endswith(NEW_SUFFIX):
                    if (
                        os.fstat(fd).st_size == 0
                        and now - os.fstat(fd).st_mtime > STALE_NEW_SECONDS
                    ):
                        os.unlink(entry.path)
                    continue
                note = _cut_torn_tail(folder, entry.path, fd)
                if note:
                    claimed.torn.append(note)
                os.rename(entry.path, entry.path.removesuffix(".open"))
                fsync_folder(folder)
                claimed.recovered.append(os.path.basename(entry.path))
            finally:
                os.close(fd)
    done = done_segments(lake)
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(CLOSED_SUFFIX):
            (claimed.done if entry.name in done else claimed.paths).append(entry.path)
    return claimed


def stage_done_ledger(lake: str, staging: str, run_id: str, paths: list[str]) -> tuple[str, str]:
    """Write the ledger of `paths` into the run's `staging` folder; returns (staged, final):
    the pair the run's commit makes visible with its events."""
    os.makedirs(staging, exist_ok=True)
    staged = os.path.join(staging, f"landing-{run_id}.json")
    with open(staged, "wb") as handle:
        handle.write(
            json.dumps({"run": run_id, "segments": [os.path.basename(p) for p in paths]}).encode()
        )
    final = os.path.join(landing_folder(lake), DONE, f"{run_id}.json")
    os.makedirs(os.path.dirname(final), exist_ok=True)
    return staged, final


def retire_segments(lake: str, paths: list[str], keep: bool) -> None:
    """Move done segments to `landing/imported/` (`keep`) or delete them."""
    folder = landing_folder(lake)
    target = os.path.join(folder, IMPORTED)
    if keep:
        os.makedirs(target, exist_ok=True)
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            if keep:
                os.rename(path, os.path.join(target, os.path.basename(path)))
            else:
                os.unlink(path)
    if paths:
        fsync_folder(folder)


# --- erasure (docs/erasure.md): rewriting what the landing log holds of a person -----------

ERASING_SUFFIX = ".erasing"  # a rewrite being written: never a segment name


@dataclass
class LandingRewrite:
    """What `rewrite_landing` changed: events removed, files rewritten or deleted."""

    removed: int = 0
    files: list[str] = field(default_factory=list)


def open_segments(lake: str) -> list[str]:
    """The `.open` and `.new` segments whose writer (a collector) is alive."""
    folder = landing_folder(lake)
    if not os.path.isdir(folder):
        return []
    alive = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.endswith((OPEN_SUFFIX, NEW_SUFFIX)):
            fd = _lock_if_free(entry.path)
            if fd is None:
                if os.path.exists(entry.path):
                    alive.append(entry.path)
            else:
                os.close(fd)
    return alive


def rewrite_landing(
    lake: str,
    edit_line: Callable[[bytes], tuple[bytes, int]],
    holds: Callable[[bytes], bool],
) -> LandingRewrite:
    """Rewrite every closed segment (imported or not) through `edit_line(line) -> (new
    line or b"", events removed)`, each file replaced atomically under its own name, and
    delete the torn tails `holds` says hold the data. Call it as the lake's one writer,
    after `claim_closed_segments` (segments still open are their collectors')."""
    folder = landing_folder(lake)
    result = LandingRewrite()
    if not os.path.isdir(folder):
        return result
    segments = [os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(CLOSED_SUFFIX)]
    imported = os.path.join(folder, IMPORTED)
    if os.path.isdir(imported):
        segments += [os.path.join(imported, n) for n in os.listdir(imported)]
    for path in sorted(p for p in segments if p.endswith(CLOSED_SUFFIX)):
        with open(path, "rb") as handle:
            lines = handle.read().splitlines(keepends=True)
        removed, out = 0, []
        for line in lines:
            new, count = edit_line(line)
            removed += count
            out.append(new)
        if removed:
            data = b"".join(out)
            replace_durably(path, data if data else None, ERASING_SUFFIX)
            result.removed += removed
            result.files.append(path)
    torn = os.path.join(folder, TORN)
    for name in sorted(os.listdir(torn)) if os.path.isdir(torn) else []:
        path = os.path.join(torn, name)
        with open(path, "rb") as handle:
            if holds(handle.read()):
                replace_durably(path, None)
                result.removed += 1  # a torn fragment: counted as one
                result.files.append(path)
    return result
