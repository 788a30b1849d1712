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
from collections.abc import Callable, Iterator
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
    # closed segments the continuous ingester has read in part (io.landing.pending_ranges)
    partial: list[str] = field(default_factory=list)


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


def _ledgers(lake: str) -> Iterator[tuple[str, dict]]:
    """(path, body) of every committed ledger of `landing/_done/`."""
    folder = os.path.join(landing_folder(lake), DONE)
    if os.path.isdir(folder):
        for entry in os.scandir(folder):
            if entry.name.endswith(".json"):
                with open(entry.path, "rb") as handle:
                    yield entry.path, json.loads(handle.read())


def done_segments(lake: str) -> set[str]:
    """Names of the segments that committed runs list as imported."""
    return landing_progress(lake)[0]


def landing_progress(lake: str) -> tuple[set[str], dict[str, tuple[int, int]]]:
    """What committed runs imported: (segments imported whole, {segment: (bytes, lines)}
    imported from its start, for segments the continuous ingester has read in part)."""
    done: set[str] = set()
    offsets: dict[str, tuple[int, int]] = {}
    for _, body in _ledgers(lake):
        done.update(body["segments"])
        for name, (end, lines) in body.get("offsets", {}).items():
            if end > offsets.get(name, (-1, 0))[0]:
                offsets[name] = (end, lines)
    return done, {name: at for name, at in offsets.items() if name not in done}


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
    done, offsets = landing_progress(lake)
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(CLOSED_SUFFIX):
            if entry.name in done:
                claimed.done.append(entry.path)
            elif entry.name in offsets:
                claimed.partial.append(entry.path)
            else:
                claimed.paths.append(entry.path)
    return claimed


def stage_done_ledger(
    lake: str,
    staging: str,
    run_id: str,
    paths: list[str],
    offsets: dict[str, tuple[int, int]] | None = None,
    summary: dict | None = None,
) -> tuple[str, str]:
    """Write the ledger of `paths` (imported whole) and `offsets` (segment name -> (bytes,
    lines) imported from its start) into the run's `staging` folder; returns (staged,
    final): the pair the run's commit makes visible with its events."""
    os.makedirs(staging, exist_ok=True)
    staged = os.path.join(staging, f"landing-{run_id}.json")
    body: dict = {"run": run_id, "segments": [os.path.basename(p) for p in paths]}
    if offsets:
        body["offsets"] = offsets
    if summary is not None:
        body["summary"] = summary
    with open(staged, "wb") as handle:
        handle.write(json.dumps(body).encode())
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


def collect_ledgers(lake: str) -> int:
    """Delete the ledgers none of whose segments is left in `landing/` (all retired: nobody
    can import them again), and those that only record offsets a later committed ledger
    has passed (the ingester's earlier batches over an open segment); returns how many.
    Call it holding the writer lock."""
    folder = landing_folder(lake)
    if not os.path.isdir(folder):
        return 0
    present = {
        entry.name.removesuffix(".open")
        for entry in os.scandir(folder)
        if entry.name.endswith((CLOSED_SUFFIX, OPEN_SUFFIX))
    }
    ledgers = list(_ledgers(lake))
    furthest: dict[str, int] = {}
    for _, body in ledgers:
        for name, (end, _lines) in body.get("offsets", {}).items():
            furthest[name] = max(furthest.get(name, 0), end)
    removed = 0
    for path, body in ledgers:
        offsets = body.get("offsets", {})
        passed = not body["segments"] and all(
            end < furthest[name] for name, (end, _lines) in offsets.items()
        )
        if present.isdisjoint([*body["segments"], *offsets]) or passed:
            os.unlink(path)
            removed += 1
    if removed:
        fsync_folder(os.path.join(folder, DONE))
    return removed


@dataclass(frozen=True)
class LandingRange:
    """Bytes of one segment not imported yet: whole lines from `start` (after `line` lines)."""

    name: str  # the segment's closed name (`NAME.jsonl`), the ledger's key
    source: str  # the path its records are read as (their `source`)
    start: int
    line: int
    data: bytes
    lines: int  # lines in `data`
    complete: bool  # `data` reaches the end of a closed segment: it is done after this

    @property
    def end(self) -> int:
        return self.start + len(self.data)


def _read_from(path: str, start: int, limit: int) -> tuple[bytes, int] | None:
    """Up to `limit` bytes of `path` from `start`, and the file's size (None: no such file)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(start)
            return handle.read(min(max(0, size - start), limit)), size
    except FileNotFoundError:
        return None


def pending_ranges(
    lake: str, max_bytes: int, only: set[str] | None = None
) -> tuple[list[LandingRange], ClaimedSegments]:
    """What of the landing log no committed run has imported, up to about `max_bytes`
    (whole lines; at least one line): the rest of each closed segment, and the complete
    lines written so far to each open one (its writer appends whole lines: a line without
    its newline is being written); `only`: of these segments (names) only. For the lake's
    one writer (holding the lock)."""
    claimed = claim_closed_segments(lake)
    _, offsets = landing_progress(lake)
    folder = landing_folder(lake)
    open_names = sorted(
        entry.name for entry in os.scandir(folder) if entry.name.endswith(OPEN_SUFFIX)
    ) if os.path.isdir(folder) else []  # fmt: skip
    candidates = [(os.path.basename(p), True) for p in [*claimed.partial, *claimed.paths]]
    candidates += [(name.removesuffix(".open"), False) for name in open_names]
    if only is not None:
        candidates = [(name, closed) for name, closed in candidates if name in only]
    ranges: list[LandingRange] = []
    budget = max_bytes
    for name, closed in sorted(candidates):
        if budget <= 0:
            break
        start, line = offsets.get(name, (0, 0))
        path = os.path.join(folder, name)
        read = _read_from(path if closed else path + ".open", start, budget)
        if read is None and not closed:  # closed meanwhile: read it as closed next time
            continue
        if read is None:
            continue
        data, size = read
        whole = closed and start + len(data) >= size
        if not whole:  # only complete lines: cut after the last newline
            data = data[: data.rfind(b"\n") + 1]
            if not data and size > start:  # a line bigger than the budget: that line alone
                rest = _read_from(path if closed else path + ".open", start, size - start)
                rest_data = rest[0] if rest else b""
                cut = rest_data.find(b"\n")
                data = rest_data[: cut + 1] if cut >= 0 else (rest_data if closed else b"")
                whole = closed and start + len(data) >= size
        if not data and not whole:
            continue
        lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        ranges.append(LandingRange(name, path, start, line, data, lines, whole))
        budget -= len(data)
    return ranges, claimed


# --- erasure (docs/erasure.md): rewriting what the landing log holds of a person -----------

ERASING_SUFFIX = ".erasing"  # a rewrite being written: never a segment name


@dataclass
class LandingRewrite:
    """What `rewrite_landing` changed: events removed, files rewritten or deleted."""

    removed: int = 0
    files: list[str] = field(default_factory=list)


def keep_offsets(line: bytes, new: bytes) -> bytes:
    """`new` (an edited `line`, or b"") padded with spaces to the length of `line`, so that the
    ingester's committed byte offsets and line numbers in the segment stay true (a line of
    spaces is blank: no record; JSON allows the spaces before the newline)."""
    body = new.rstrip(b"\n")
    if len(body) + 1 > len(line):
        raise ValueError("an edited landing line is longer than the line it replaces")
    return body + b" " * (len(line) - len(body) - 1) + b"\n"


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
    partly_read = landing_progress(lake)[1]  # segments the ingester has read in part
    for path in sorted(p for p in segments if p.endswith(CLOSED_SUFFIX)):
        with open(path, "rb") as handle:
            lines = handle.read().splitlines(keepends=True)
        removed, out = 0, []
        for line in lines:
            new, count = edit_line(line)
            removed += count
            if count and os.path.basename(path) in partly_read:
                new = keep_offsets(line, new)
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
