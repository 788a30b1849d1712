"""The lake sink of a batch run: stage files, drop duplicates, commit.

Graph (every element is a file or an Arrow table, never one event):

    events --StageEvents--> staged events/ + raw/ file pairs ----------------+
              \\--keys of what it staged, by bucket --+                       |
    days the run writes --ReadLakeKeys--> bucket ---+--GroupByKey(bucket)     |
                                                        --FindDuplicates      |
                                                        --GroupByKey(file)    |
                                                        --DropDuplicates ---> Commit
    failed --StageFailed--> staged failed/ files ------------------------------+

`LAKE/raw/date=D/` keeps, for every event of `events/date=D/`, the event as parsed
(the normaliser's archive column): what `eventpipe reprocess` re-runs the stages
from. Each staged raw file has the name and the row order of its events file, so
dropping a duplicate removes the same row from both.

Each writer buffer (up to FLUSH_ROWS rows) drops its own duplicates before it
stages anything; the shuffle only settles copies in different buffers or in the
lake (the lake's keys are read only when it holds events, and not when the run
replaces the days it writes: reprocessing). The `written` counter is counted at
commit, from the files that become visible. The commit also drops staged failed rows
the lake already holds (`io.failed_dedupe`: counted as duplicates, not failed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from eventpipe.core.duck import connect
from eventpipe.io import dedupe
from eventpipe.io.failed_dedupe import drop_stored_failed
from eventpipe.io.lake import (
    EVENTS,
    FAILED,
    RAW,
    lake_path,
    read_parquet,
    write_parquet,
)
from eventpipe.io.lake_lock import writer_lock
from eventpipe.io.lake_transaction import SUMMARY, LakeTransaction
from eventpipe.schemas import PARTITION_COLUMN, arrow_schema
from eventpipe.schemas.failures import FAILED_SCHEMA
from eventpipe.schemas.outputs import (
    DUPLICATES,
    FAILED_ROWS,
    NAMESPACE,
    WRITTEN,
    failed_reason_metric,
)
from eventpipe.schemas.records import ARCHIVE_COLUMN, PARSED_SCHEMA

FLUSH_ROWS = 100_000
KEYS = "keys"
FILES = "files"
KeyBucket = tuple[int, pa.Table]
EVENT_SCHEMA = arrow_schema()


@dataclass(frozen=True)
class Staged:
    """One staged file of a run and where it goes at commit."""

    table: str  # EVENTS, RAW or FAILED
    file: str  # `date=D/name`: the same for an events file and its raw file
    staged: str
    final: str


def staged_file(lake: str, run_id: str, table: str, file: str) -> Staged:
    """Where the run's transaction stages `table/file`, and where it goes at commit."""
    staged = LakeTransaction(lake, run_id).staged_path(table, *file.split("/"))
    return Staged(table, file, staged, lake_path(lake, table, file))


def write_visible(lake: str, txn_id: str, files: list[tuple[str, str, pa.Table]]) -> None:
    """Write `(table, date=D/name, rows)` files into the lake in one transaction of their own
    (the streaming job's window files), waiting for the writer lock to commit. The same
    names written again (a retried bundle) replace the files."""
    txn = LakeTransaction.begin(lake, txn_id, "stream")
    for table, file, rows in files:
        staged = txn.staged_path(table, *file.split("/"))
        write_parquet(rows, staged, event_table=table == EVENTS)
        txn.add(staged, lake_path(lake, table, file))
    with writer_lock(lake, "stream", txn_id, wait=None):  # not while a batch job writes
        txn.commit()


def day_slices(table: pa.Table, column: str) -> Iterator[tuple[str, pa.Table]]:
    """(YYYY-MM-DD, rows of that UTC day) of a table sorted by the timestamp `column`."""
    micros = pc.cast(table[column], pa.int64()).to_numpy(zero_copy_only=False)
    days = np.floor_divide(micros, 86_400_000_000)
    starts = [0, *(np.flatnonzero(np.diff(days)) + 1).tolist()]
    for start, end in zip(starts, [*starts[1:], len(days)], strict=True):
        part = table.slice(start, end - start)
        yield pc.strftime(part[column][0], format="%Y-%m-%d").as_py(), part


def archive_table(events: pa.Table) -> pa.Table:
    """The raw/ rows of events carrying the archive column (PARSED_SCHEMA)."""
    return pa.Table.from_struct_array(events[ARCHIVE_COLUMN].combine_chunks()).cast(PARSED_SCHEMA)


class _StageFiles(beam.DoFn):
    """Buffers one bundle's tables; writes a staged file per UTC day of `date_of`.

    Event buffers give an events file per day (and its raw file, with `archive`), and
    the keys of what they staged, by bucket (the main output). The staged files are
    tagged FILES.
    """

    def __init__(
        self,
        lake: str,
        run_id: str,
        table: str,
        date_of: str,
        buckets: int = 1,
        archive: bool = True,
    ) -> None:
        self.lake = lake
        self.run_id = run_id
        self.table = table
        self.date_of = date_of
        self.buckets = buckets
        self.archive = archive

    def setup(self) -> None:
        self.writer_id = uuid.uuid4().hex[:10]
        self.files = 0
        self.failed = Metrics.counter(NAMESPACE, FAILED_ROWS)
        self.duplicates = Metrics.counter(NAMESPACE, DUPLICATES)
        self.con = connect() if self.table == EVENTS else None

    def teardown(self) -> None:
        if self.con is not None:
            self.con.close()

    def start_bundle(self) -> None:
        self.buffer: list[pa.Table] = []
        self.buffered = 0

    def process(self, table: pa.Table) -> Iterator:
        self.buffer.append(table)
        self.buffered += table.num_rows
        if self.buffered >= FLUSH_ROWS:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for out in self._flush():
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(out.tag, _in_global_window(out.value))
            else:
                yield _in_global_window(out)

    def _flush(self) -> Iterator:
        if not self.buffer:
            return
        table = pa.concat_tables(self.buffer)
        self.buffer, self.buffered = [], 0
        if self.table == FAILED:
            for file, part in self._files(table.sort_by(self.date_of)):
                yield beam.pvalue.TaggedOutput(
                    FILES, self._write(FAILED, file, part.cast(FAILED_SCHEMA))
                )
                self.failed.inc(part.num_rows)
            return
        table, bucket, copies = dedupe.drop_own_copies(self.con, table, self.date_of, self.buckets)
        self.duplicates.inc(copies)
        files, rows = [], []
        for file, part in self._files(table):
            stored = part.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)
            yield beam.pvalue.TaggedOutput(FILES, self._write(EVENTS, file, stored))
            if self.archive:
                yield beam.pvalue.TaggedOutput(FILES, self._write(RAW, file, archive_table(part)))
            files.append(pa.array([file] * part.num_rows, pa.string()))
            rows.append(np.arange(part.num_rows, dtype=np.int32))
        keys = dedupe.event_keys(table, pa.concat_arrays(files), pa.array(np.concatenate(rows)))
        yield from dedupe.by_bucket(keys, bucket)

    def _files(self, table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        """(staged file name `date=D/part-...`, its rows) of a table sorted by `date_of`."""
        for date, part in day_slices(table, self.date_of):
            self.files += 1
            name = f"part-{self.run_id}-{self.writer_id}-{self.files:05d}.parquet"
            yield f"{PARTITION_COLUMN}={date}/{name}", part

    def _write(self, table: str, file: str, rows: pa.Table) -> Staged:
        staged = staged_file(self.lake, self.run_id, table, file)
        write_parquet(rows, staged.staged, event_table=table == EVENTS)
        return staged


def _in_global_window(value: object) -> WindowedValue:
    return WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])


@beam.typehints.with_output_types(KeyBucket)
class _BucketKeys(beam.DoFn):
    """Key tables -> (bucket, keys of the bucket)."""

    def __init__(self, buckets: int) -> None:
        self.buckets = buckets

    def setup(self) -> None:
        self.con = connect()

    def teardown(self) -> None:
        self.con.close()

    def process(self, keys: pa.Table) -> Iterator[tuple[int, pa.Table]]:
        yield from dedupe.split_by_bucket(self.con, keys, self.buckets)


@beam.typehints.with_output_types(pa.Table)
class _ReadLakeKeys(beam.DoFn):
    """A date partition -> the keys of the events the lake holds there (one table a file)."""

    def __init__(self, lake: str) -> None:
        self.lake = lake

    def process(self, partition: str) -> Iterator[pa.Table]:
        pattern = lake_path(self.lake, EVENTS, partition, "*.parquet")
        for meta in FileSystems.match([pattern])[0].metadata_list:
            yield dedupe.existing_keys(read_parquet(meta.path, ["connectionId", "messageId"]))


class _FindDuplicates(beam.DoFn):
    """(bucket, key tables) -> (staged file, rows to drop), counted as `duplicates`."""

    def setup(self) -> None:
        self.con = connect()
        self.duplicates = Metrics.counter(NAMESPACE, DUPLICATES)

    def teardown(self) -> None:
        self.con.close()

    def process(self, element: tuple[int, Iterable[pa.Table]]) -> Iterator[tuple[str, list[int]]]:
        _, tables = element
        for file, rows in dedupe.duplicate_rows(self.con, pa.concat_tables(list(tables))):
            self.duplicates.inc(len(rows))
            yield file, rows


class _DropDuplicates(beam.DoFn):
    """(staged file, row lists) -> the staged events (and raw) files without those rows."""

    def __init__(self, lake: str, run_id: str, archive: bool = True) -> None:
        self.lake = lake
        self.run_id = run_id
        self.tables = (EVENTS, RAW) if archive else (EVENTS,)

    def process(self, element: tuple[str, Iterable[list[int]]]) -> Iterator[str]:
        file, row_lists = element
        drop = np.unique(np.concatenate([np.asarray(rows, dtype=np.int64) for rows in row_lists]))
        for table in self.tables:
            path = staged_file(self.lake, self.run_id, table, file).staged
            with FileSystems.open(path) as handle:
                every_row = pq.ParquetFile(handle).metadata.num_rows == len(drop)
            if every_row:  # e.g. a file imported twice: nothing to read
                FileSystems.delete([path])
                continue
            rows = read_parquet(path)
            keep = np.ones(rows.num_rows, dtype=bool)
            keep[drop] = False
            FileSystems.delete([path])
            if keep.any():
                write_parquet(rows.filter(pa.array(keep)), path, event_table=table == EVENTS)
        yield file


class _CommitFn(beam.DoFn):
    """After every staged file is final: drop failed rows the lake holds already, count the
    events written and the failed rows, make the files visible.

    Partitions in `replace` (events and raw) are swapped whole for what the run staged
    there, even nothing; the run's other files are added.
    """

    def __init__(
        self,
        lake: str,
        run_id: str,
        replace: tuple[str, ...],
        commit_with: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.lake = lake
        self.run_id = run_id
        self.replace = replace
        self.commit_with = commit_with

    def setup(self) -> None:
        self.written = Metrics.counter(NAMESPACE, WRITTEN)
        self.failed = Metrics.counter(NAMESPACE, FAILED_ROWS)
        self.duplicates = Metrics.counter(NAMESPACE, DUPLICATES)

    def process(self, staged: list[Staged], rewritten: list[str]) -> Iterator[int]:
        del rewritten  # a side input only so that the commit waits for the rewrites
        self._drop_stored_failed([s.staged for s in staged if s.table == FAILED])
        present = [s for s in staged if FileSystems.exists(s.staged)]
        counts = {EVENTS: 0, FAILED: 0}
        for s in present:
            if s.table in counts:
                with FileSystems.open(s.staged) as handle:
                    counts[s.table] += pq.ParquetFile(handle).metadata.num_rows
        self.written.inc(counts[EVENTS])
        txn = LakeTransaction(self.lake, self.run_id)
        for table in (EVENTS, RAW):
            for partition in self.replace:
                txn.replace_partition(table, partition)  # the files staged there, even none
        for s in present:
            if not self._replaced(s):
                txn.add(s.staged, s.final)
        for staged, final in self.commit_with:  # e.g. the landing ledger
            txn.add(staged, final)
        txn.record(SUMMARY, {"written": counts[EVENTS], "failed": counts[FAILED]})
        txn.commit()
        yield len(present)

    def _drop_stored_failed(self, paths: list[str]) -> None:
        """Failed rows are counted when staged: those the lake holds become duplicates."""
        con = connect()
        try:
            dropped = drop_stored_failed(con, self.lake, paths)
        finally:
            con.close()
        for reason, n in dropped.items():
            Metrics.counter(NAMESPACE, failed_reason_metric(reason)).dec(n)
            self.failed.dec(n)
            self.duplicates.inc(n)

    def _replaced(self, staged: Staged) -> bool:
        return staged.table != FAILED and staged.file.split("/")[0] in self.replace


def dedupe_buckets(input_bytes: int) -> int:
    """How many key buckets a run of `input_bytes` of raw input uses (~128 MB of input each)."""
    return int(min(1024, max(4, input_bytes // (128 * 2**20))))


class StageDeduplicated(beam.PTransform):
    """Event tables -> staged events/ files (and raw/ ones, with `archive`) under `root`,
    without duplicates.

    Duplicates within the run are dropped, and copies of the keys `read_keys` gives:
    a transform from the partitions (`date=D`) the run stages files in to tables of
    existing keys (`dedupe.existing_keys`), or None. Returns (the Staged files, the
    files rewritten without duplicates: a signal to wait for before using them).
    """

    def __init__(
        self,
        root: str,
        run_id: str,
        buckets: int,
        read_keys: beam.PTransform | None = None,
        archive: bool = True,
    ) -> None:
        super().__init__()
        self.root = root
        self.run_id = run_id
        self.buckets = buckets
        self.read_keys = read_keys
        self.archive = archive

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        root, run, buckets = self.root, self.run_id, self.buckets
        staged = events | "StageEvents" >> beam.ParDo(
            _StageFiles(root, run, EVENTS, "timestamp", buckets, self.archive)
        ).with_output_types(KeyBucket).with_outputs(FILES, main=KEYS)
        keys = [staged[KEYS]]
        if self.read_keys is not None:
            keys.append(
                staged[FILES]
                | "Partitions" >> beam.FlatMap(_event_partition)
                | "Distinct" >> beam.Distinct()
                | "ReadKeys" >> self.read_keys
                | "Bucket" >> beam.ParDo(_BucketKeys(buckets))
            )
        rewritten = (
            tuple(keys)
            | "AllKeys" >> beam.Flatten()
            | "GroupBuckets" >> beam.GroupByKey()
            | "FindDuplicates" >> beam.ParDo(_FindDuplicates())
            | "GroupFiles" >> beam.GroupByKey()
            | "DropDuplicates" >> beam.ParDo(_DropDuplicates(root, run, self.archive))
        )
        return staged[FILES], rewritten


class WriteToLake(beam.PTransform):
    """(events with the archive column, failed rows) -> the lake, deduplicated, committed at once."""

    def __init__(
        self,
        lake: str,
        run_id: str,
        buckets: int = 4,
        replace: tuple[str, ...] = (),
        commit_with: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__()
        self.lake = lake
        self.run_id = run_id
        self.buckets = buckets
        # (staged file, final path) pairs the job staged itself that become visible with
        # the run's commit, atomically with its events (the import's landing ledger).
        self.commit_with = tuple(commit_with)
        # Partitions (`date=D`) the run replaces: their new events are compared with each
        # other only; without any, new events are also compared with what the lake holds.
        self.replace = tuple(replace)

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        events, failed = pcolls
        lake, run = self.lake, self.run_id
        read_keys = None
        if not self.replace and _holds_events(lake):
            read_keys = beam.ParDo(_ReadLakeKeys(lake))
        files, rewritten = events | "Dedupe" >> StageDeduplicated(
            lake, run, self.buckets, read_keys
        )
        rejected = failed | "StageFailed" >> beam.ParDo(
            _StageFiles(lake, run, FAILED, "receivedAt")
        ).with_outputs(FILES, main=KEYS)
        return (
            (files, rejected[FILES])
            | "AllFiles" >> beam.Flatten()
            | "ListFiles" >> beam.combiners.ToList()
            | "Commit"
            >> beam.ParDo(
                _CommitFn(lake, run, self.replace, self.commit_with), beam.pvalue.AsList(rewritten)
            )
        )


def _event_partition(staged: Staged) -> Iterator[str]:
    if staged.table == EVENTS:
        yield staged.file.split("/")[0]


def _holds_events(lake: str) -> bool:
    """Whether the lake has event files yet (else there is nothing to compare with)."""
    pattern = lake_path(lake, EVENTS, f"{PARTITION_COLUMN}=*", "*.parquet")
    return bool(FileSystems.match([pattern], limits=[1])[0].metadata_list)
