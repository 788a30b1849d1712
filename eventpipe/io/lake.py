"""Sink: the Parquet lake, written atomically.

Layout: `LAKE/events/date=YYYY-MM-DD/part-*.parquet` (date of `timestamp`) and
`LAKE/failed/date=YYYY-MM-DD/part-*.parquet` (date of `receivedAt`), plus
`LAKE/_runs/<run_id>.json`, one summary per finished run.

Atomicity: writers put files under `LAKE/_staging/<run_id>/`; one final step
(after every writer is done) records the list of files in `_COMMITTING`, then
renames them into place and removes the staging folder. A killed run leaves
only its staging folder: the next run deletes it when it never reached
`_COMMITTING` (nothing of it was visible), or finishes its renames when it did.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator

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

from eventpipe.schemas import PARTITION_COLUMN, arrow_schema, iter_leaves
from eventpipe.transforms.failures import FAILED_SCHEMA
from eventpipe.transforms.stages import NAMESPACE

log = logging.getLogger(__name__)

EVENTS = "events"
FAILED = "failed"
STAGING = "_staging"
RUNS = "_runs"
COMMITTING = "_COMMITTING"
RUNNING = "_RUNNING.json"
FLUSH_ROWS = 100_000
ROW_GROUP_ROWS = 16_384
# Point lookups of the read API (a user, a session, a message) skip row groups by these.
BLOOM_COLUMNS = ("userId", "anonymousId", "messageId", "context.session.id")
# Columns whose values rarely repeat: dictionary encoding would be tried and dropped
# (measured: a third of the write time, and bigger files).
HIGH_CARDINALITY = frozenset(
    {
        "kpid", "messageId", "anonymousId", "userId", "previousId", "groupId",
        "receivedAt", "sentAt", "originalTimestamp", "timestamp", "properties", "traits",
        "context.ip", "context.session.id", "context.device.id", "context.device.advertisingId",
        "context.device.token", "context.location.latitude", "context.location.longitude",
        "context.location.speed",
    }
)  # fmt: skip
DICTIONARY_COLUMNS = [path for path, _ in iter_leaves() if path not in HIGH_CARDINALITY]


def lake_path(lake: str, *parts: str) -> str:
    """A path inside the lake (works for local paths and gs:// URLs)."""
    return FileSystems.join(lake, *parts)


def _mkdirs(path: str) -> None:
    with contextlib.suppress(OSError):  # exists already, or (GCS) there are no folders
        FileSystems.mkdirs(path)


def write_parquet(table: pa.Table, path: str, event_table: bool) -> None:
    """Write one lake file with the lake's settings (event files: dictionaries and Bloom filters)."""
    _mkdirs(os.path.dirname(path) if "://" not in path else path)
    options: dict = {"compression": "zstd", "row_group_size": ROW_GROUP_ROWS}
    if event_table:
        options["use_dictionary"] = DICTIONARY_COLUMNS
        ndv = {"ndv": ROW_GROUP_ROWS, "fpp": 0.01}
        options["bloom_filter_options"] = dict.fromkeys(BLOOM_COLUMNS, ndv)
    with FileSystems.create(path, mime_type="application/octet-stream") as handle:
        pq.write_table(table, handle, **options)


class _WritePartitions(beam.DoFn):
    """Buffers tables of one bundle, writes one staged Parquet file per date partition."""

    def __init__(self, lake: str, run_id: str, table: str, schema: pa.Schema, date_of: str) -> None:
        self.lake = lake
        self.run_id = run_id
        self.table = table
        self.schema = schema
        self.date_of = date_of  # the timestamp column whose UTC date is the partition

    def setup(self) -> None:
        self.writer_id = uuid.uuid4().hex[:10]
        self.files = 0
        self.rows_counter = Metrics.counter(
            NAMESPACE, "written" if self.table == EVENTS else "failed"
        )

    def start_bundle(self) -> None:
        self.buffer: list[pa.Table] = []
        self.buffered = 0

    def process(self, table: pa.Table) -> Iterator[tuple[str, str]]:
        self.buffer.append(table)
        self.buffered += table.num_rows
        if self.buffered >= FLUSH_ROWS:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for pair in self._flush():
            yield WindowedValue(pair, MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self) -> Iterator[tuple[str, str]]:
        if not self.buffer:
            return
        table = pa.concat_tables(self.buffer)
        self.buffer, self.buffered = [], 0
        table = table.select(self.schema.names).cast(self.schema).sort_by(self.date_of)
        # Sorted by the timestamp, each UTC day is one contiguous slice.
        micros = pc.cast(table[self.date_of], pa.int64()).to_numpy(zero_copy_only=False)
        days = np.floor_divide(micros, 86_400_000_000)
        starts = [0, *(np.flatnonzero(np.diff(days)) + 1).tolist()]
        for start, end in zip(starts, [*starts[1:], len(days)], strict=True):
            part = table.slice(start, end - start)
            date = pc.strftime(part[self.date_of][0], format="%Y-%m-%d").as_py()
            self.files += 1
            name = f"part-{self.run_id}-{self.writer_id}-{self.files:05d}.parquet"
            partition = f"{PARTITION_COLUMN}={date}"
            staged = lake_path(self.lake, STAGING, self.run_id, self.table, partition, name)
            write_parquet(part, staged, event_table=self.table == EVENTS)
            self.rows_counter.inc(part.num_rows)
            yield staged, lake_path(self.lake, self.table, partition, name)


def commit_files(lake: str, run_id: str, pairs: list[tuple[str, str]]) -> None:
    """Make a run's staged files visible: record them, rename them, drop the staging folder."""
    staging = lake_path(lake, STAGING, run_id)
    marker = lake_path(staging, COMMITTING)
    with FileSystems.create(marker) as handle:
        handle.write(json.dumps(pairs).encode())
    _finish_commit(staging, pairs)


def _finish_commit(staging: str, pairs: list[tuple[str, str]]) -> None:
    pending = [(s, d) for s, d in pairs if FileSystems.exists(s)]
    for _, dest in pending:
        if "://" not in dest:
            _mkdirs(os.path.dirname(dest))
    if pending:
        FileSystems.rename([s for s, _ in pending], [d for _, d in pending])
    FileSystems.delete([staging])


class _CommitFn(beam.DoFn):
    def __init__(self, lake: str, run_id: str) -> None:
        self.lake = lake
        self.run_id = run_id

    def process(self, pairs: list[tuple[str, str]]) -> Iterator[int]:
        commit_files(self.lake, self.run_id, sorted(pairs))
        yield len(pairs)


class WriteToLake(beam.PTransform):
    """Event rows and failed rows -> the lake's two tables, committed together at the end."""

    def __init__(self, lake: str, run_id: str) -> None:
        super().__init__()
        self.lake = lake
        self.run_id = run_id

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> beam.PCollection:
        events, failed = pcolls
        written = events | "WriteEvents" >> beam.ParDo(
            _WritePartitions(self.lake, self.run_id, EVENTS, arrow_schema(), "timestamp")
        )
        rejected = failed | "WriteFailed" >> beam.ParDo(
            _WritePartitions(self.lake, self.run_id, FAILED, FAILED_SCHEMA, "receivedAt")
        )
        return (
            (written, rejected)
            | "AllFiles" >> beam.Flatten()
            | "ListFiles" >> beam.combiners.ToList()
            | "Commit" >> beam.ParDo(_CommitFn(self.lake, self.run_id))
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_running(lake: str, run_id: str) -> None:
    """Record that `run_id` is in progress on this host (so cleanup leaves it alone)."""
    path = lake_path(lake, STAGING, run_id, RUNNING)
    if "://" not in path:
        _mkdirs(os.path.dirname(path))
    with FileSystems.create(path) as handle:
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())


def recover_abandoned_runs(lake: str) -> list[str]:
    """Finish or remove the staging folders of runs that died. Returns what was done.

    A run whose `_RUNNING.json` names a live process on this host is left alone;
    runs of other hosts are left alone too (they may be running).
    """
    staging_root = lake_path(lake, STAGING)
    if not FileSystems.exists(staging_root):
        return []
    done = []
    runs = {
        m.path[len(staging_root) :].strip("/").split("/")[0]
        for m in FileSystems.match([lake_path(staging_root, "*", RUNNING)])[0].metadata_list
    }
    for run_id in sorted(runs):
        staging = lake_path(staging_root, run_id)
        with FileSystems.open(lake_path(staging, RUNNING)) as handle:
            owner = json.loads(handle.read())
        if owner.get("host") != socket.gethostname() or _pid_alive(int(owner.get("pid", 0))):
            continue
        marker = lake_path(staging, COMMITTING)
        if FileSystems.exists(marker):
            with FileSystems.open(marker) as handle:
                pairs = [tuple(p) for p in json.loads(handle.read())]
            _finish_commit(staging, pairs)
            done.append(f"completed the commit of interrupted run {run_id}")
        else:
            FileSystems.delete([staging])
            done.append(f"removed the staged files of abandoned run {run_id}")
    return done


def write_run_summary(lake: str, run_id: str, summary: dict) -> str:
    """Write `_runs/<run_id>.json` and return its path."""
    path = lake_path(lake, RUNS, f"{run_id}.json")
    if "://" not in path:
        _mkdirs(os.path.dirname(path))
    with FileSystems.create(path) as handle:
        handle.write(json.dumps(summary, indent=2, default=str).encode())
    return path
