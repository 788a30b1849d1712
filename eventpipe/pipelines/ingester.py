"""Continuous ingestion: the landing log -> the lake in micro-batches, exactly once.

Each micro-batch, holding the lake's writer lock (only for the batch, so that compact,
identity and reprocess take turns with it):

1. recovery (`io.lake_lock.recover_lake`), as every writer does first;
2. what no committed run has imported (`io.landing.pending_ranges`): the rest of each closed
   segment and the complete lines written so far to each open one, from the offsets the
   ledgers of committed runs record;
3. the import's stages in process (`transforms.chain.StageChain`, opened once), kpids
   from the identity map (`identity.stitch`, re-read when the map file changes);
4. the lake sink's own dedupe and write steps (`io.lake_batch`), and a ledger
   (`landing/_done/<batch>.json`: the segments finished, the (bytes, lines) read of the
   others, the batch's counts) committed in the same lake transaction as its events;
5. segments read to their end are retired (moved to `landing/imported/` or deleted), and
   ledgers whose segments are all retired are deleted.

A kill at any moment loses and duplicates nothing: what a batch read is imported iff its
commit happened, and the next batch starts from the committed offsets.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.core.duck import connect
from eventpipe.identity.stitch import KpidStitcher
from eventpipe.identity.store import current_kpid_map, kpid_map_version
from eventpipe.io.lake import write_run_summary
from eventpipe.io.lake_batch import BatchCounts, LakeKeys, stage_batch
from eventpipe.io.lake_lock import LakeBusy, recover_lake, writer_lock
from eventpipe.io.lake_transaction import LakeTransaction
from eventpipe.io.landing import (
    LandingRange,
    collect_ledgers,
    pending_ranges,
    retire_segments,
    stage_done_ledger,
)
from eventpipe.io.raw_records import Rejected, line_chunks
from eventpipe.schemas.failures import empty_failed, rejected_records
from eventpipe.schemas.records import RECORDS_SCHEMA
from eventpipe.transforms.chain import StageChain
from eventpipe.transforms.enrich import EnrichOptions

log = logging.getLogger("eventpipe.ingest")

JOB = "ingest"
DEFAULT_BATCH_BYTES = 32 * 2**20
TURN_SECONDS = (
    0.25  # the lock is left free at least this long between batches (waiters poll at 0.2 s)
)


@dataclass(frozen=True)
class IngestConfig:
    """What the ingester needs; built by the job from its flags."""

    lake: str
    run_id: str
    run_start: datetime
    enrich: EnrichOptions | None
    keep_segments: bool = True  # retired segments go to landing/imported/ (else deleted)
    max_batch_bytes: int = DEFAULT_BATCH_BYTES


@dataclass
class IngestCounts:
    """Counts of one micro-batch, or of a run (the sum of its batches)."""

    read: int = 0
    written: int = 0
    failed: int = 0
    duplicates: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    segments: int = 0  # segments finished (read to their end)
    bytes: int = 0

    @property
    def reconciles(self) -> bool:
        return self.read == self.written + self.failed + self.duplicates

    def add(self, other: IngestCounts) -> None:
        for name in ("read", "written", "failed", "duplicates", "batches", "segments", "bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.failed_by_reason.items():
            self.failed_by_reason[reason] = self.failed_by_reason.get(reason, 0) + n

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "reconciles": self.reconciles}


def records_of(
    ranges: list[LandingRange], run_id: str, run_start: datetime
) -> tuple[pa.Table, pa.Table]:
    """The raw records of landing ranges (line numbers in their segment), and the failed rows
    of the lines the reader rejects (too large, not UTF-8)."""
    tables, failed = [], []
    for r in ranges:
        for item in line_chunks(r.source, iter([r.data])):
            if isinstance(item, Rejected):
                lines = [line + r.line for line in item.lines]
                failed.append(
                    rejected_records(
                        r.source, lines, item.reason, item.messages, item.raws,
                        run_id, run_start, item.indexes,
                    )
                )  # fmt: skip
            elif item.num_rows:
                lines = pc.add(item["line"], r.line)
                tables.append(item.set_column(1, RECORDS_SCHEMA.field("line"), lines))
    records = pa.concat_tables(tables) if tables else RECORDS_SCHEMA.empty_table()
    return records, pa.concat_tables(failed) if failed else empty_failed()


class Ingester:
    """Runs micro-batches of one ingest run; not thread-safe (one thread calls it)."""

    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.chain = StageChain(config.run_id, config.run_start, None, config.enrich)
        self.con = connect()
        self.keys = LakeKeys(config.lake)
        self.stitcher: KpidStitcher | None = None
        self.map_version: tuple | None = None
        self.totals = IngestCounts()
        self.recovered: list[str] = []
        self.started = time.monotonic()
        self.days_written: set[str] = set()  # partitions (`date=D`) given events; the job clears it

    def close(self) -> None:
        self.chain.close()
        self.con.close()

    def record(self, status: str) -> str:
        """Write the run's record (`_runs/RUN.json`: its counts so far); returns its path."""
        summary = {
            "run_id": self.config.run_id,
            "job": JOB,
            "status": status,
            "seconds": time.monotonic() - self.started,
            "recovered": self.recovered,
            **self.totals.to_dict(),
        }
        return write_run_summary(self.config.lake, self.config.run_id, summary)

    def _stitch(self, events: pa.Table) -> pa.Table:
        version = kpid_map_version(self.config.lake)
        if version != self.map_version:
            self.map_version = version
            kpid_map = current_kpid_map(self.config.lake)
            self.stitcher = KpidStitcher(kpid_map).bind(self.con) if kpid_map.num_rows else None
        return events if self.stitcher is None else self.stitcher.stitch(events)

    def run_batch(self, only: set[str] | None = None) -> IngestCounts | None:
        """One micro-batch (call it holding the lake's writer lock): None when the landing
        log had nothing new. `only`: segment names to read (the others are left)."""
        config, lake = self.config, self.config.lake
        notes = recover_lake(lake, config.run_id)
        for note in notes:
            log.warning("%s", note)
        self.recovered.extend(notes)
        ranges, claimed = pending_ranges(lake, config.max_batch_bytes, only)
        retire_segments(lake, claimed.done, config.keep_segments)  # done, not yet moved
        for note in claimed.torn:
            log.warning("landing: %s", note)
        if not ranges:
            collect_ledgers(lake)
            return None
        number = self.totals.batches + 1
        txn = LakeTransaction.begin(lake, f"{config.run_id}-{number:06d}", JOB)
        counts, written = self._stage(txn, ranges)
        whole = [r.source for r in ranges if r.complete]
        offsets = {r.name: (r.end, r.line + r.lines) for r in ranges if not r.complete}
        summary = {**counts.to_dict(), "torn": claimed.torn}
        ledger = stage_done_ledger(lake, txn.staging, txn.id, whole, offsets, summary)
        txn.add(*ledger)
        txn.commit()
        self.keys.remember(written)
        self.days_written.update(written.days)
        retire_segments(lake, whole, config.keep_segments)
        collect_ledgers(lake)
        self.totals.add(counts)
        self.record("running")  # (a kill before this line: the batch's ledger has its counts)
        return counts

    def _stage(
        self, txn: LakeTransaction, ranges: list[LandingRange]
    ) -> tuple[IngestCounts, BatchCounts]:
        config = self.config
        records, rejected = records_of(ranges, config.run_id, config.run_start)
        counts = IngestCounts(batches=1, bytes=sum(len(r.data) for r in ranges))
        counts.segments = sum(r.complete for r in ranges)
        events, failed, read = None, [rejected], rejected.num_rows
        if records.num_rows:
            result = self.chain.run(records)
            read += result.read
            failed.append(result.failed)
            if result.events.num_rows:
                events = self._stitch(result.events)
        failed_rows = pa.concat_tables([f for f in failed if f.num_rows] or [empty_failed()])
        written = stage_batch(self.con, txn, events, failed_rows, self.keys)
        counts.read, counts.written, counts.failed = read, written.written, written.failed
        counts.duplicates = written.duplicates
        counts.failed_by_reason = dict(written.failed_by_reason)
        return counts, written


def run_loop(
    ingester: Ingester,
    stop: threading.Event,
    interval: float,
    once: bool = False,
    on_batch: Callable[[IngestCounts], None] | None = None,
    between: Callable[[], None] | None = None,
) -> None:
    """Micro-batches every `interval` seconds until `stop` is set (a batch under way is
    finished and committed first), each holding the writer lock for its own length only.
    `once`: until the landing log has nothing new. `between`: called after each batch,
    without the lock (the job's periodic compaction)."""
    lake, run_id = ingester.config.lake, ingester.config.run_id
    while not stop.is_set():
        started = time.monotonic()
        try:
            with writer_lock(lake, JOB, run_id, wait=None, cancel=stop.is_set):
                counts = ingester.run_batch()
        except LakeBusy:  # stopped while waiting for the lock
            break
        if counts is not None and on_batch is not None:
            on_batch(counts)
        if once and counts is None:
            break
        if between is not None:
            between()
        pause = TURN_SECONDS if once else interval - (time.monotonic() - started)
        stop.wait(max(TURN_SECONDS, pause))
