"""The lake sink in one process, for small batches (the continuous ingester's micro-batches).

The same steps as the Beam sink (`io.lake_sink`), through the same functions: a batch's own
duplicates dropped (`dedupe.drop_own_copies`), then the copies of events the lake holds in
the days it writes (`dedupe.duplicate_rows`, a stored copy wins), an events file and its
raw/ file per UTC day of `timestamp`, failed files per day of `receivedAt` without the rows
the lake holds (`failed_dedupe.drop_stored_failed`), all committed in one lake transaction
with the caller's extra files (the landing ledger).

The keys of the lake's event files are read once per file and kept (`LakeKeys`): files are
never rewritten under the same name by the batch writers, and a file that is gone (compacted,
replaced) is forgotten, so each batch reads only the files that are new since the last.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from eventpipe.io import dedupe
from eventpipe.io.failed_dedupe import drop_stored_failed
from eventpipe.io.lake import EVENTS, FAILED, RAW, lake_path, read_parquet, write_parquet
from eventpipe.io.lake_sink import EVENT_SCHEMA, archive_table, day_slices
from eventpipe.io.lake_transaction import LakeTransaction
from eventpipe.schemas import PARTITION_COLUMN
from eventpipe.schemas.failures import FAILED_SCHEMA

KEPT_PARTITIONS = 8  # days whose keys `LakeKeys` keeps in memory (~50 bytes an event)


@dataclass
class BatchCounts:
    """What one batch wrote: events, failed rows (by reason), duplicates dropped."""

    written: int = 0
    failed: int = 0
    duplicates: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)  # partitions (`date=D`) it added events to
    added: list[tuple[str, str, pa.Table]] = field(default_factory=list)  # (partition, file, rows)


class LakeKeys:
    """The (connectionId, messageId) keys of the lake's event files, per partition, read once
    per file; the partitions used least recently are dropped beyond KEPT_PARTITIONS."""

    def __init__(self, lake: str) -> None:
        self.lake = lake
        self.files: OrderedDict[str, dict[str, pa.Table]] = OrderedDict()

    def of(self, partitions: list[str]) -> pa.Table:
        """Keys (dedupe.KEY_SCHEMA, `existing`) of every event file in `partitions` now."""
        tables = []
        for partition in partitions:
            pattern = lake_path(self.lake, EVENTS, partition, "*.parquet")
            paths = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
            known = self.files.pop(partition, {})
            current = {p: known.get(p) or self._read(p) for p in paths}
            self.files[partition] = current
            tables.extend(current.values())
        while len(self.files) > KEPT_PARTITIONS:
            self.files.popitem(last=False)
        return pa.concat_tables(tables) if tables else dedupe.KEY_SCHEMA.empty_table()

    def _read(self, path: str) -> pa.Table:
        return dedupe.existing_keys(read_parquet(path, ["connectionId", "messageId"]))

    def remember(self, counts: BatchCounts) -> None:
        """Remember the keys of the files a committed batch added."""
        for partition, path, rows in counts.added:
            if partition in self.files:
                self.files[partition][path] = dedupe.existing_keys(rows)
        counts.added = []


def _drop_stored_copies(
    con: duckdb.DuckDBPyConnection, events: pa.Table, stored: pa.Table
) -> tuple[pa.Table, int]:
    """`events` (sorted, without their own copies) without those the lake holds."""
    stored = stored.filter(pc.is_in(stored["messageId"], value_set=events["messageId"]))
    if not stored.num_rows:
        return events, 0
    zeros = pa.array(np.zeros(events.num_rows, np.int32))
    files = pa.DictionaryArray.from_arrays(zeros, pa.array(["batch"]))  # one staged "file"
    keys = pa.concat_tables([dedupe.event_keys(events, files), stored])
    found = dedupe.duplicate_rows(con, keys)
    if not found:
        return events, 0
    keep = np.ones(events.num_rows, dtype=bool)
    keep[np.asarray(found[0][1], dtype=np.int64)] = False
    return events.filter(pa.array(keep)), int((~keep).sum())


def stage_batch(
    con: duckdb.DuckDBPyConnection,
    txn: LakeTransaction,
    events: pa.Table | None,
    failed: pa.Table,
    known: LakeKeys,
) -> BatchCounts:
    """Stage the batch's events (with the archive column) and failed rows in `txn`, without
    duplicates (holding the writer lock: the lake's keys must not change until the commit).
    Returns the counts; after `txn.commit()`, give them to `known.remember`."""
    counts = BatchCounts()
    if events is not None and events.num_rows:
        _stage_events(con, txn, events, known, counts)
    if failed.num_rows:
        _stage_failed(con, txn, failed, counts)
    return counts


def _stage_events(
    con: duckdb.DuckDBPyConnection,
    txn: LakeTransaction,
    events: pa.Table,
    known: LakeKeys,
    counts: BatchCounts,
) -> None:
    """Events and raw files per day of timestamp, without the copies the batch or the lake
    holds (duplicates)."""
    lake = txn.lake
    events, _, counts.duplicates = dedupe.drop_own_copies(con, events, "timestamp", 1)
    days = sorted({day for day, _ in day_slices(events, "timestamp")})
    partitions = [f"{PARTITION_COLUMN}={day}" for day in days]
    events, stored = _drop_stored_copies(con, events, known.of(partitions))
    counts.duplicates += stored
    if not events.num_rows:
        return
    for number, (day, part) in enumerate(day_slices(events, "timestamp")):
        file = f"{PARTITION_COLUMN}={day}/part-{txn.id}-{number:05d}.parquet"
        rows = part.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)
        for table, content in ((EVENTS, rows), (RAW, archive_table(part))):
            staged = txn.staged_path(table, *file.split("/"))
            write_parquet(content, staged, event_table=table == EVENTS)
            txn.add(staged, lake_path(lake, table, file))
        counts.added.append((f"{PARTITION_COLUMN}={day}", lake_path(lake, EVENTS, file), rows))
        counts.written += part.num_rows
        counts.days.append(f"{PARTITION_COLUMN}={day}")


def _stage_failed(
    con: duckdb.DuckDBPyConnection, txn: LakeTransaction, failed: pa.Table, counts: BatchCounts
) -> None:
    """Failed files per day of receivedAt, without the rows the lake holds (duplicates)."""
    failed = failed.cast(FAILED_SCHEMA).sort_by("receivedAt")
    staged_files = []
    for number, (day, part) in enumerate(day_slices(failed, "receivedAt")):
        name = f"part-{txn.id}-{number:05d}.parquet"
        staged = txn.staged_path(FAILED, f"{PARTITION_COLUMN}={day}", name)
        write_parquet(part, staged, event_table=False)
        staged_files.append(
            (staged, lake_path(txn.lake, FAILED, f"{PARTITION_COLUMN}={day}", name))
        )
    reasons, n = np.unique(failed["reason"].to_numpy(zero_copy_only=False), return_counts=True)
    by_reason = dict(zip(reasons.tolist(), n.tolist(), strict=True))
    for reason, dropped in drop_stored_failed(con, txn.lake, [s for s, _ in staged_files]).items():
        counts.duplicates += dropped
        by_reason[reason] -= dropped
    counts.failed_by_reason = {r: n for r, n in by_reason.items() if n}
    counts.failed = sum(counts.failed_by_reason.values())
    for staged, final in staged_files:
        if os.path.exists(staged):  # (every row dropped: the file is deleted)
            txn.add(staged, final)
