"""Group commit: the requests that arrive together are validated in one vectorised pass and
landed with one durable write, then each is answered.

One thread owns the DuckDB session and the landing sink. It takes every pending request
(up to `max_group`), runs the import's own parse and validate stages (`RecordParser`,
`EventValidator`) on an Arrow table of their landing envelopes, lands the envelopes of the
requests that are acceptable in one `sink.append`, and resolves each request's future with
its `Verdict`. While it works, new requests queue: the busier the collector, the bigger
the groups.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa

from eventpipe.core.duck import connect
from eventpipe.schemas.records import RECORDS_SCHEMA
from eventpipe.transforms.parse import RecordParser
from eventpipe.transforms.validate import EventValidator

log = logging.getLogger(__name__)

SOURCE = "collector"


class LandingSink(Protocol):
    """Where accepted envelopes go: `append` returns once they are durable."""

    def append(self, data: bytes) -> None: ...

    def due_in(self) -> float | None: ...

    def close_if_due(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Problem:
    """What is wrong with a request or one of its events (a failed row's reason)."""

    reason: str
    field: str | None
    message: str
    index: int | None = None


@dataclass(frozen=True)
class Verdict:
    """A request's outcome: `rejected` (not landed), else landed with its `invalid` events
    (which reach the failed table at import)."""

    rejected: Problem | None = None
    invalid: list[Problem] = field(default_factory=list)
    unavailable: str | None = None  # the landing failed: nothing of the group was acknowledged


@dataclass
class _Pending:
    line: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class RequestValidator:
    """The import's parse and validate stages over a group of envelope lines."""

    def __init__(self) -> None:
        start = datetime.now(UTC)
        self.con = connect()
        self.parser = RecordParser("collector", start).bind(self.con)
        self.validator = EventValidator("collector", start).bind(self.con)

    def check(self, lines: list[bytes]) -> list[Verdict]:
        """One verdict per envelope line, in order."""
        n = len(lines)
        records = pa.Table.from_arrays(
            [
                pa.array([SOURCE] * n, pa.string()),
                pa.array(range(n), pa.int64()),
                pa.array([0] * n, pa.int32()),
                pa.array([line.decode() for line in lines], pa.string()),
            ],
            schema=RECORDS_SCHEMA,
        )
        parsed = self.parser.parse(records)
        rejected = {
            row["line"]: Problem(row["reason"], row["field"], row["message"])
            for row in parsed.failed.select(["line", "reason", "field", "message"]).to_pylist()
        }
        invalid: dict[int, list[Problem]] = {}
        if parsed.events.num_rows:
            failed = self.validator.validate(parsed.events).failed
            if failed.num_rows:
                failed = failed.sort_by([("line", "ascending"), ("index", "ascending")])
                for row in failed.select(
                    ["line", "index", "reason", "field", "message"]
                ).to_pylist():
                    invalid.setdefault(row["line"], []).append(
                        Problem(row["reason"], row["field"], row["message"], row["index"])
                    )
        return [
            Verdict(rejected=rejected[i]) if i in rejected else Verdict(invalid=invalid.get(i, []))
            for i in range(n)
        ]

    def close(self) -> None:
        self.con.close()


class GroupCommitter:
    """The collector's one writer thread: `await submit(line)` -> the request's Verdict."""

    def __init__(self, sink: LandingSink, max_group: int = 1000, linger_s: float = 0.004) -> None:
        self.sink = sink
        self.max_group = max_group
        self.linger_s = linger_s
        self.queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.groups = 0
        self.requests = 0
        self.cpu_s = 0.0  # CPU seconds of the committer thread (validation and landing)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="collector-commit", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Finish the queued requests, close the open segment, stop the thread."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None

    async def submit(self, line: bytes) -> Verdict:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.put(_Pending(line, loop, future))
        return await future

    def _take_group(self) -> tuple[list[_Pending], bool]:
        """Block for the first request (or the open segment's deadline), then take every
        request already queued. Returns (group, stop asked)."""
        try:
            first = self.queue.get(timeout=self.sink.due_in())
        except queue.Empty:
            return [], False
        if first is None:
            return [], True
        group = [first]
        # Under load (more than one request waiting), linger a moment for more: a group's
        # validation has a fixed cost of a few ms, so bigger groups make cheaper requests.
        linger_until = None
        while len(group) < self.max_group:
            try:
                if linger_until is None:
                    item = self.queue.get_nowait()
                else:
                    item = self.queue.get(timeout=max(0.0, linger_until - time.monotonic()))
            except queue.Empty:
                if linger_until is not None or len(group) < 2 or not self.linger_s:
                    break
                linger_until = time.monotonic() + self.linger_s
                continue
            if item is None:
                return group, True
            group.append(item)
        return group, False

    def _run(self) -> None:
        validator = RequestValidator()
        started = time.thread_time()
        try:
            stop = False
            while not stop:
                group, stop = self._take_group()
                try:
                    self.sink.close_if_due()
                except OSError:  # the next append opens a new segment
                    log.exception("closing a landing segment failed")
                if group:
                    self._commit(validator, group)
        finally:
            validator.close()
            self.sink.close()
            self.cpu_s = time.thread_time() - started
            log.info(
                "collector: %d requests in %d groups; the committer used %.2f CPU-s",
                self.requests,
                self.groups,
                self.cpu_s,
            )

    def _commit(self, validator: RequestValidator, group: list[_Pending]) -> None:
        try:
            verdicts = validator.check([p.line for p in group])
        except Exception as exc:  # a bug, not a request's fault: answer every request
            log.exception("validating a group of %d requests failed", len(group))
            verdicts = [Verdict(unavailable=f"validation failed: {exc}")] * len(group)
        accepted = b"".join(
            p.line
            for p, v in zip(group, verdicts, strict=True)
            if v.rejected is None and not v.unavailable
        )
        if accepted:
            try:
                self.sink.append(accepted)
            except Exception as exc:  # disk full, Pub/Sub down: nothing of it is acknowledged
                log.exception("landing %d bytes failed", len(accepted))
                verdicts = [
                    v if v.rejected is not None else Verdict(unavailable=f"landing failed: {exc}")
                    for v in verdicts
                ]
        self.groups += 1
        self.requests += len(group)
        answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Verdict]]] = {}
        for pending, verdict in zip(group, verdicts, strict=True):
            answers.setdefault(pending.loop, []).append((pending.future, verdict))
        for loop, pairs in answers.items():  # one wake-up of each event loop per group
            loop.call_soon_threadsafe(_resolve, pairs)


def _resolve(pairs: list[tuple[asyncio.Future, Verdict]]) -> None:
    for future, verdict in pairs:
        if not future.done():  # the client may have gone
            future.set_result(verdict)
