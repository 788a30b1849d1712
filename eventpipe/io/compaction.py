"""Compaction of the lake: each date partition's many small files -> one (or a few) big ones.

A partition with more files than it needs, or one of more than MAX_FILE_ROWS rows, is
rewritten as `ceil(rows / MAX_FILE_ROWS)` files sorted by the table's timestamp, with the
writer settings of `eventpipe.io.lake`. Driver-side (pyarrow, no Beam), one partition in
memory at a time. Each partition is replaced whole in a lake transaction of its own
(`io.lake_transaction`): an interrupted compaction is finished or discarded by the next
writer's recovery. docs/lake.md ("Compaction").
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from eventpipe.core.ids import time_ordered_id
from eventpipe.io.lake import (
    EVENTS,
    FAILED,
    RAW,
    STAGING,
    lake_path,
    write_parquet,
)
from eventpipe.io.lake_transaction import LakeTransaction
from eventpipe.schemas import arrow_schema
from eventpipe.schemas.failures import FAILED_SCHEMA
from eventpipe.schemas.lake_layout import Partition, is_remote, list_partitions
from eventpipe.schemas.records import PARSED_SCHEMA

COMPACT_PREFIX = "compact-"
MAX_FILE_ROWS = 1_000_000
"""A partition of more rows is written as several files of at most this many rows."""
SORT_COLUMN = {EVENTS: "timestamp", FAILED: "receivedAt", RAW: "received_at"}
TABLES = (EVENTS, FAILED)


class CompactionError(Exception):
    """A partition or a lake that cannot be compacted (the message says why)."""


def table_schema(table: str) -> pa.Schema:
    """The file schema of one of the lake's tables (raw/: compacted by the ingester only)."""
    return {EVENTS: arrow_schema(), RAW: PARSED_SCHEMA}.get(table, FAILED_SCHEMA)


def lake_exists(lake: str) -> bool:
    """Whether `lake` is an existing folder (local) or holds any object (gs:// and co)."""
    if not is_remote(lake):
        return os.path.isdir(lake)
    return bool(FileSystems.match([lake_path(lake, "*")], limits=[1])[0].metadata_list)


def _parquet_file(handle: BinaryIO, path: str) -> pq.ParquetFile:
    """`handle` opened as Parquet; a file pyarrow cannot open (truncated, garbage) raises
    CompactionError naming it."""
    try:
        return pq.ParquetFile(handle)
    except pa.ArrowException as exc:
        raise CompactionError(f"damaged file {path}: {exc}") from exc


def _read_parquet(path: str) -> pa.Table:
    with FileSystems.open(path, mime_type="application/octet-stream") as handle:
        return _parquet_file(handle, path).read()


def _row_count(path: str) -> int:
    with FileSystems.open(path, mime_type="application/octet-stream") as handle:
        return _parquet_file(handle, path).metadata.num_rows


def files_needed(rows: int) -> int:
    """How many files a compacted partition of `rows` rows has."""
    return max(1, math.ceil(rows / MAX_FILE_ROWS))


@dataclass
class PartitionPlan:
    """What compacting one partition does: its files and rows, and the number of new files."""

    partition: Partition
    rows: int
    new_files: int
    biggest: int = 0  # rows of its biggest file

    @property
    def needed(self) -> bool:
        """More than one file, and more files than needed or a file too big: so compacting
        a compacted partition again does nothing."""
        files = len(self.partition.files)
        return files > 1 and (files > self.new_files or self.biggest > MAX_FILE_ROWS)


def plan_partition(partition: Partition) -> PartitionPlan:
    """The plan of a partition (a partition of one file is never `needed`)."""
    if len(partition.files) <= 1:
        return PartitionPlan(partition, 0, len(partition.files))
    rows = [_row_count(path) for path in partition.files]
    return PartitionPlan(partition, sum(rows), files_needed(sum(rows)), max(rows))


def new_compaction_id(now: datetime | None = None) -> str:
    """A compaction's id: sorts in start order."""
    return time_ordered_id(now or datetime.now(UTC))


def transaction_id(compaction_id: str, partition: Partition) -> str:
    """The id of the transaction that compacts one partition."""
    return f"{COMPACT_PREFIX}{compaction_id}-{partition.table}-{partition.day.isoformat()}"


def stage_partition(lake: str, compaction_id: str, plan: PartitionPlan) -> LakeTransaction:
    """Read, merge and sort the partition, write its new files into a transaction that
    replaces the partition's files by them. Nothing is visible until it commits."""
    part = plan.partition
    schema = table_schema(part.table)
    tables = []
    for path in part.files:
        table = _read_parquet(path)
        missing = set(schema.names) - set(table.column_names)
        if missing:
            raise CompactionError(f"{path}: columns missing from the file: {sorted(missing)}")
        tables.append(table.select(schema.names).cast(schema))
    merged = pa.concat_tables(tables).sort_by(SORT_COLUMN[part.table])
    del tables
    if merged.num_rows != plan.rows:
        raise CompactionError(
            f"{part.path}: read {merged.num_rows} rows, the file footers say {plan.rows}"
        )
    txn = LakeTransaction.begin(lake, transaction_id(compaction_id, part), "compact")
    staged = txn.replace_partition(part.table, part.name, old=list(part.files))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    count = files_needed(merged.num_rows)
    size = math.ceil(merged.num_rows / count)
    for k in range(count):
        name = f"part-compact-{stamp}-{secrets.token_hex(4)}.parquet"
        write_parquet(merged.slice(k * size, size), lake_path(staged, name), part.table == EVENTS)
    return txn


@dataclass
class TableReport:
    """What compacting one table did (or, in a dry run, would do)."""

    table: str
    partitions: int = 0  # partitions in range
    compacted: int = 0
    files_before: int = 0  # files of the compacted partitions
    files_after: int = 0
    rows: int = 0  # rows of the compacted partitions
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def line(self, dry_run: bool = False) -> str:
        verb = "would compact" if dry_run else "compacted"
        text = (
            f"{self.table}: {verb} {self.compacted} of {self.partitions} partitions, "
            f"{self.files_before} -> {self.files_after} files, {self.rows} rows"
        )
        if not dry_run:
            text += f", {self.seconds:.1f} s"
        if self.errors:
            text += f", {len(self.errors)} failed"
        return text


def compact_table(
    lake: str,
    compaction_id: str,
    table: str,
    first: date | None = None,
    last: date | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TableReport:
    """Compact every partition of `table` in [first, last] that has more files than needed.

    `progress`, when given, is called with one line per partition. A partition that
    fails is reported in `errors` and left as it was; the others go on.
    """
    started = time.monotonic()
    report = TableReport(table)
    for part in list_partitions(lake, table, first, last):
        report.partitions += 1
        line = f"{table}/{part.name}: {len(part.files)} files"
        try:
            plan = plan_partition(part)
            if not plan.needed:
                continue
            line += f", {plan.rows} rows -> {plan.new_files}"
            txn = None if dry_run else stage_partition(lake, compaction_id, plan)
        except (CompactionError, OSError, pa.ArrowException) as exc:
            # Nothing of it is visible: drop what was staged, leave the partition as it was.
            folder = lake_path(lake, STAGING, transaction_id(compaction_id, part))
            if FileSystems.exists(folder):
                FileSystems.delete([folder])
            report.errors.append(f"{table}/{part.name}: {exc}")
            if progress:
                progress(f"{line}: FAILED, partition left as it was: {exc}")
            continue
        if txn is not None:
            txn.commit()  # a failure from here on is rolled forward by the next writer
        report.compacted += 1
        report.files_before += len(part.files)
        report.files_after += plan.new_files
        report.rows += plan.rows
        if progress:
            progress(("would compact " if dry_run else "compacted ") + line)
    report.seconds = time.monotonic() - started
    return report


def compact_lake(
    lake: str,
    tables: Iterable[str] = TABLES,
    first: date | None = None,
    last: date | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    compaction_id: str = "",
) -> list[TableReport]:
    """Compact `tables`; returns a report per table. Call it as the lake's writer, after
    its recovery (`io.lake_lock.open_writer`).

    Raises CompactionError when the lake is missing.
    """
    if not lake_exists(lake):
        raise CompactionError(f"no lake at {lake}")
    if dry_run:
        return [compact_table(lake, "", t, first, last, True, progress) for t in tables]
    compaction_id = compaction_id or new_compaction_id()
    return [compact_table(lake, compaction_id, t, first, last, False, progress) for t in tables]
