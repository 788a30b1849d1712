"""Compaction of the lake: each date partition's many small files -> one (or a few) big ones.

A partition with more files than it needs, or one of more than MAX_FILE_ROWS rows, is
rewritten as `ceil(rows / MAX_FILE_ROWS)` files sorted by the table's timestamp, with the
writer settings of `eventpipe.io.lake`. Driver-side (pyarrow, no Beam), one partition in
memory at a time. Each partition is committed through `_COMPACTING.json` + `_COMMITTING`
and swapped in with `renameat2` on local lakes; an interrupted compaction is finished
(`recover_abandoned_compactions`) or discarded by the next. The protocol in full:
docs/lake.md ("Compaction").
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from eventpipe.io.lake import (
    COMMITTING,
    EVENTS,
    FAILED,
    STAGING,
    _pid_alive,
    lake_path,
    make_dirs,
    time_ordered_id,
    write_parquet,
)
from eventpipe.io.partition_swap import exchange_folders
from eventpipe.schemas import PARTITION_COLUMN, arrow_schema
from eventpipe.transforms.failures import FAILED_SCHEMA

COMPACT_PREFIX = "compact-"
OWNER = "_COMPACTING.json"
MAX_FILE_ROWS = 1_000_000
"""A partition of more rows is written as several files of at most this many rows."""
SORT_COLUMN = {EVENTS: "timestamp", FAILED: "receivedAt"}
TABLES = (EVENTS, FAILED)


class CompactionError(Exception):
    """A partition or a lake that cannot be compacted (the message says why)."""


def table_schema(table: str) -> pa.Schema:
    """The file schema of one of the lake's tables."""
    return arrow_schema() if table == EVENTS else FAILED_SCHEMA


def _is_remote(path: str) -> bool:
    return "://" in path


def lake_exists(lake: str) -> bool:
    """Whether `lake` is an existing folder (local) or holds any object (gs:// and co)."""
    if not _is_remote(lake):
        return os.path.isdir(lake)
    return bool(FileSystems.match([lake_path(lake, "*")], limits=[1])[0].metadata_list)


@dataclass
class Partition:
    """One `date=D` folder of a table and its Parquet files (path, size in bytes)."""

    table: str
    day: date
    path: str
    files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{PARTITION_COLUMN}={self.day.isoformat()}"


def list_partitions(
    lake: str, table: str, first: date | None = None, last: date | None = None
) -> list[Partition]:
    """The date partitions of `table` in [first, last] (inclusive; None = unbounded), by date."""
    root = lake_path(lake, table)
    pattern = lake_path(root, f"{PARTITION_COLUMN}=*", "*.parquet")
    found: dict[str, Partition] = {}
    for meta in FileSystems.match([pattern])[0].metadata_list:
        folder, _ = FileSystems.split(meta.path)
        _, name = FileSystems.split(folder)
        try:
            day = date.fromisoformat(name.removeprefix(f"{PARTITION_COLUMN}="))
        except ValueError:
            continue  # not a partition folder of the lake
        if (first and day < first) or (last and day > last):
            continue
        part = found.setdefault(folder, Partition(table, day, folder))
        part.files.append((meta.path, meta.size_in_bytes))
    for part in found.values():
        part.files.sort()
    return sorted(found.values(), key=lambda p: p.day)


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
    rows = [_row_count(path) for path, _ in partition.files]
    return PartitionPlan(partition, sum(rows), files_needed(sum(rows)), max(rows))


def new_compaction_id(now: datetime | None = None) -> str:
    """A compaction's id: sorts in start order."""
    return time_ordered_id(now or datetime.now(UTC))


def staging_folder(lake: str, compaction_id: str) -> str:
    """The staging folder of one compaction run."""
    return lake_path(lake, STAGING, COMPACT_PREFIX + compaction_id)


def mark_compacting(lake: str, compaction_id: str) -> str:
    """Create the compaction's staging folder with its owner file; returns the folder."""
    staging = staging_folder(lake, compaction_id)
    if not _is_remote(staging):
        make_dirs(staging)
    with FileSystems.create(lake_path(staging, OWNER)) as handle:
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
    return staging


@dataclass
class Staged:
    """A partition whose new files are staged and recorded in `_COMMITTING`, not yet visible."""

    staging: str
    table: str
    partition: str
    new: list[tuple[str, str]]  # (staged path, final path)
    old: list[str]
    rows: int

    def marker(self) -> dict:
        return {
            "table": self.table,
            "partition": self.partition,
            "new": [list(p) for p in self.new],
            "old": self.old,
            "rows": self.rows,
        }


def stage_partition(lake: str, compaction_id: str, plan: PartitionPlan) -> Staged:
    """Steps 2-3: read, merge and sort the partition, write its new files to staging, record
    them and the old files in `_COMMITTING`. Nothing is visible to readers yet."""
    part = plan.partition
    schema = table_schema(part.table)
    tables = []
    for path, _ in part.files:
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
    staging = staging_folder(lake, compaction_id)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    count = files_needed(merged.num_rows)
    size = math.ceil(merged.num_rows / count)
    new = []
    for k in range(count):
        name = f"part-compact-{stamp}-{secrets.token_hex(4)}.parquet"
        staged = lake_path(staging, part.table, part.name, name)
        write_parquet(merged.slice(k * size, size), staged, event_table=part.table == EVENTS)
        new.append((staged, lake_path(part.path, name)))
    result = Staged(
        staging, part.table, part.name, new, [p for p, _ in part.files], merged.num_rows
    )
    with FileSystems.create(lake_path(staging, COMMITTING)) as handle:
        handle.write(json.dumps(result.marker()).encode())
    return result


def _exchange_whole(new: list[tuple[str, str]], old: list[str]) -> bool:
    """Put every staged file in place at once by exchanging the staged folder with the
    partition folder, when both are local and hold exactly the new / the old files (the
    writer lock keeps other writers out meanwhile). False when that cannot be done."""
    staged_dirs = {os.path.dirname(s) for s, _ in new}
    final_dirs = {os.path.dirname(d) for _, d in new}
    if len(staged_dirs) != 1 or len(final_dirs) != 1 or _is_remote(next(iter(final_dirs))):
        return False
    staged_dir, final_dir = staged_dirs.pop(), final_dirs.pop()

    def parquet(folder: str) -> set[str]:
        try:
            return {e.path for e in os.scandir(folder) if e.name.endswith(".parquet")}
        except FileNotFoundError:
            return set()

    if parquet(staged_dir) != {s for s, _ in new} or parquet(final_dir) != set(old):
        return False
    try:
        exchange_folders(staged_dir, final_dir)
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
        return False
    return True


def finish_partition(staging: str, new: list[tuple[str, str]], old: list[str]) -> None:
    """Step 4 (also the roll-forward of an interrupted compaction): put the staged files
    that are still there into place, delete the old files, remove the marker.

    A local partition's folder is exchanged with the staged one in one system call, so a
    reader sees the old files or the new ones, never both; otherwise (gs://, a file system
    without the exchange) the new files are renamed in, then the old ones deleted.
    """
    pending = [(s, d) for s, d in new if FileSystems.exists(s)]
    if pending and len(pending) == len(new) and _exchange_whole(new, old):
        pending = []  # in place; the staged folder now holds the old files: removed below
    for _, dest in pending:
        if not _is_remote(dest):
            make_dirs(os.path.dirname(dest))
    if pending:
        FileSystems.rename([s for s, _ in pending], [d for _, d in pending])
    absent = [d for _, d in new if not FileSystems.exists(d)]
    if absent:  # never delete the old files unless every new one is in place
        raise CompactionError(f"compacted files missing, old files kept: {absent}")
    gone = [p for p in old if FileSystems.exists(p)]
    if gone:
        FileSystems.delete(gone)
    leftovers = [lake_path(staging, COMMITTING)]
    leftovers += sorted({FileSystems.split(s)[0] for s, _ in new})  # <table>/date=D
    leftovers = [p for p in leftovers if FileSystems.exists(p)]
    if leftovers:
        FileSystems.delete(leftovers)


def commit_partition(staged: Staged) -> None:
    """Make a staged partition visible (step 4)."""
    finish_partition(staged.staging, staged.new, staged.old)


def _read_json(path: str) -> dict:
    with FileSystems.open(path, mime_type="application/json") as handle:
        return json.loads(handle.read())


def recover_abandoned_compactions(lake: str, dry_run: bool = False) -> list[str]:
    """Finish or remove the staging folders of compactions that died; returns what was done
    (with `dry_run`, what would be done).

    Raises CompactionError when another compaction may be running: its owner is a live
    process on this host, or it runs on another host.
    """
    root = lake_path(lake, STAGING)
    if not FileSystems.exists(root) and not _is_remote(root):
        return []
    owners = FileSystems.match([lake_path(root, COMPACT_PREFIX + "*", OWNER)])[0].metadata_list
    done = []
    for meta in sorted(owners, key=lambda m: m.path):
        staging, _ = FileSystems.split(meta.path)
        name = FileSystems.split(staging)[1]
        owner = _read_json(meta.path)
        if owner.get("host") != socket.gethostname() or _pid_alive(int(owner.get("pid", 0))):
            raise CompactionError(
                f"another compaction may be running ({name}: host {owner.get('host')}, "
                f"pid {owner.get('pid')}); if it died, run compact again on that host to "
                f"finish it (or, only if it has no {COMMITTING} file, delete {staging})"
            )
        marker = lake_path(staging, COMMITTING)
        if FileSystems.exists(marker):
            record = _read_json(marker)
            what = (
                f"completed the interrupted compaction {name} of "
                f"{record['table']}/{record['partition']}"
            )
            if not dry_run:
                new = [(s, d) for s, d in record["new"]]
                finish_partition(staging, new, record["old"])
        else:
            what = f"removed the staged files of abandoned compaction {name}"
        if not dry_run:
            FileSystems.delete([staging])
        done.append(what if not dry_run else "would have " + what)
    return done


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
            staged = None if dry_run else stage_partition(lake, compaction_id, plan)
        except (CompactionError, OSError, pa.ArrowException) as exc:
            # Nothing of it is visible: drop what was staged, leave the partition as it was.
            folder = lake_path(staging_folder(lake, compaction_id), table, part.name)
            if FileSystems.exists(folder):
                FileSystems.delete([folder])
            report.errors.append(f"{table}/{part.name}: {exc}")
            if progress:
                progress(f"{line}: FAILED, partition left as it was: {exc}")
            continue
        if staged is not None:
            # A failure from here on leaves `_COMMITTING` for the next run to roll forward.
            commit_partition(staged)
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
    its recovery (`io.lake_lock.open_writer`, which also rolls interrupted compactions
    forward).

    Raises CompactionError when the lake is missing.
    """
    if not lake_exists(lake):
        raise CompactionError(f"no lake at {lake}")
    if dry_run:
        return [compact_table(lake, "", t, first, last, True, progress) for t in tables]
    compaction_id = compaction_id or new_compaction_id()
    staging = mark_compacting(lake, compaction_id)
    try:
        reports = [
            compact_table(lake, compaction_id, t, first, last, False, progress) for t in tables
        ]
    except BaseException:
        # Keep the folder when a partition is half committed: the next run rolls it forward.
        if not FileSystems.exists(lake_path(staging, COMMITTING)):
            FileSystems.delete([staging])
        raise
    FileSystems.delete([staging])
    return reports
