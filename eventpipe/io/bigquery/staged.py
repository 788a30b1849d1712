"""Deduplicated batch writes to BigQuery: stage Parquet files, drop duplicates, then load.

Graph (every element is a file, a key table or a day, never one event):

    checked events --StageDeduplicated (io.lake_sink)--> staged events/ + raw/ files
    days the run stages --ReadTableKeys--> keys the table holds --^   (keys only shuffled)
    staged files, once rewritten without duplicates --FinishStaging--> events files
        [with an archive lake: raw/ files committed to LAKE/raw first]
    events files --Reshuffle--ReadStaged--> LoadEvents (import: load jobs, appended)
                                       or   ReplaceDays (reprocess: each day swapped whole)

The survivor rule is the lake's (transforms.dedupe): a copy the table already holds
wins; among new copies, the earliest receivedAt, then source, line and position.
Staging lives under `ROOT/_staging/RUN/` (ROOT: the archive lake, or a staging
folder); it is deleted once the rows are loaded.

Order with an archive lake: the raw/ files are committed (atomically, io.lake)
before any load job runs, so a crash never leaves a loaded event without its
archive row (a later `eventpipe reprocess` would drop it); a crash between the two
leaves archive rows not loaded yet, which a re-run of the import loads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from eventpipe.io import dedupe
from eventpipe.io.bigquery.tables import (
    BigQueryTarget,
    load_job_id,
    load_parquet,
    parquet_bytes,
    read_day_keys,
)
from eventpipe.io.lake import (
    EVENTS,
    RAW,
    STAGING,
    lake_path,
    make_dirs,
    pause_point,
    read_parquet,
)
from eventpipe.io.lake_sink import Staged, StageDeduplicated
from eventpipe.io.lake_transaction import OWNER, LakeTransaction, owner_is_gone
from eventpipe.schemas.bigquery_schema import load_arrow_schema

LOADING = "-load"  # suffix of the staging folder of events files waiting for their load


@beam.typehints.with_output_types(pa.Table)
class _ReadTableKeys(beam.DoFn):
    """A partition `date=D` -> the keys the table holds on day D (one pruned query)."""

    def __init__(self, target: BigQueryTarget, skip_days: tuple[str, ...] = ()) -> None:
        self.target = target
        self.skip = frozenset(skip_days)

    def setup(self) -> None:
        self.client = self.target.client()

    def process(self, partition: str) -> Iterator[pa.Table]:
        day = partition.split("=", 1)[1]
        if day in self.skip:  # a day the run replaces whole: its stored rows do not count
            return
        stored = read_day_keys(self.client, self.target.table, dt.date.fromisoformat(day))
        if stored.num_rows:
            yield dedupe.existing_keys(stored)


class _FinishStaging(beam.DoFn):
    """Every Staged file of the run, once rewritten -> the events files to load.

    With `archive`, `root` is a lake: the events files move to a folder of their own
    (`_staging/RUN-load/`), then the raw/ files are committed to LAKE/raw (which drops
    the run's staging folder).
    """

    def __init__(self, root: str, run_id: str, archive: bool) -> None:
        self.root = root
        self.run_id = run_id
        self.archive = archive

    def process(self, staged: list[Staged], rewritten: list[str]) -> Iterator[str]:
        del rewritten  # a side input only so that this waits for the rewrites
        present = [s for s in staged if FileSystems.exists(s.staged)]
        events = [s for s in present if s.table == EVENTS]
        if not self.archive:
            yield from (s.staged for s in events)
            return
        LakeTransaction.begin(
            self.root, self.run_id + LOADING
        )  # never commits: recovery removes it
        moved = [lake_path(self.root, STAGING, self.run_id + LOADING, s.file) for s in events]
        for path in moved:
            make_dirs(os.path.dirname(path))
        if events:
            FileSystems.rename([s.staged for s in events], moved)
        archive = LakeTransaction(self.root, self.run_id)
        for s in present:
            if s.table == RAW:
                archive.add(s.staged, s.final)
        archive.commit()
        pause_point("archived-before-load")
        yield from moved


def _read_staged(path: str) -> Iterator[pa.Table]:
    yield read_parquet(path)


def _day_of(path: str) -> tuple[str, str]:
    """A staged events file -> (YYYY-MM-DD of its `date=` folder, the path)."""
    return path.rsplit("/", 2)[-2].split("=", 1)[1], path


class _RemoveStaging(beam.DoFn):
    """Once every load is done: delete the run's staging folders."""

    def __init__(self, root: str, run_id: str) -> None:
        self.root = root
        self.run_id = run_id

    def process(self, _: object, loaded: list[int]) -> Iterator[int]:
        for run in (self.run_id, self.run_id + LOADING):
            folder = lake_path(self.root, STAGING, run)
            if FileSystems.exists(folder):
                FileSystems.delete([folder])
        yield sum(loaded)


class StageForBigQuery(beam.PTransform):
    """Checked event tables -> paths of staged events files without duplicates, to load.

    Duplicates within the run are dropped, and copies of rows the target table holds
    on the days the run writes (except `replace_days`, which the run swaps whole).
    With `archive`, `root` is a lake whose raw/ gets the archive of the staged events.
    """

    def __init__(
        self,
        target: BigQueryTarget,
        root: str,
        run_id: str,
        buckets: int,
        archive: bool = False,
        replace_days: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.target = target
        self.root = root
        self.run_id = run_id
        self.buckets = buckets
        self.archive = archive
        self.replace_days = tuple(replace_days)

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        read_keys = beam.ParDo(_ReadTableKeys(self.target, self.replace_days))
        files, rewritten = events | "Dedupe" >> StageDeduplicated(
            self.root, self.run_id, self.buckets, read_keys, archive=self.archive
        )
        return (
            files
            | "ListStaged" >> beam.combiners.ToList()
            | "FinishStaging"
            >> beam.ParDo(
                _FinishStaging(self.root, self.run_id, self.archive),
                beam.pvalue.AsList(rewritten),
            )
            | "Spread" >> beam.Reshuffle()
        )


def read_staged(paths: beam.PCollection) -> beam.PCollection:
    """Staged events files -> their tables (one a file)."""
    return paths | "ReadStaged" >> beam.FlatMap(_read_staged)


def by_day(paths: beam.PCollection) -> beam.PCollection:
    """Staged events files -> (YYYY-MM-DD, path)."""
    return paths | "DayOf" >> beam.Map(_day_of)


def remove_staging(
    pipeline: beam.Pipeline, root: str, run_id: str, loaded: beam.PCollection
) -> beam.PCollection:
    """Delete the run's staging folders once `loaded` (the loads' outputs) is complete."""
    return (
        pipeline
        | "Done" >> beam.Create([None])
        | "RemoveStaging" >> beam.ParDo(_RemoveStaging(root, run_id), beam.pvalue.AsList(loaded))
    )


def concat_staged(paths: Iterable[str | None]) -> list[pa.Table]:
    """The tables of staged events files (None entries skipped)."""
    return [t for path in paths if path is not None for t in _read_staged(path)]


def _keys(table: pa.Table) -> pa.Array:
    """connectionId and messageId of each row, as one string."""
    connection = pc.cast(table["connectionId"], pa.string())
    return pc.binary_join_element_wise(connection, table["messageId"], "\x00").combine_chunks()


def load_archived_not_loaded(lake: str, target: BigQueryTarget) -> list[str]:
    """Load what runs that died after committing their archive left unloaded, once.

    Such a run left its events files in `_staging/RUN-load/` (the lake's recovery would
    delete them, and a re-run would archive the rows again): each file's rows that the
    table does not hold yet (a run may die between two loads) are loaded under a job id
    of the run and content, then the folder is deleted. Call it holding the writer lock,
    before the recovery. Returns a note per run.
    """
    notes = []
    pattern = lake_path(lake, STAGING, "*" + LOADING, OWNER)
    for marker in FileSystems.match([pattern])[0].metadata_list:
        folder = marker.path.rsplit("/", 1)[0]
        with FileSystems.open(marker.path) as handle:
            owner = json.loads(handle.read())
        if not owner_is_gone(owner):
            continue  # running, or maybe running elsewhere
        run_id = folder.rsplit("/", 1)[1].removesuffix(LOADING)
        client, schema, loaded = target.client(), load_arrow_schema(), 0
        files = FileSystems.match([lake_path(folder, "date=*", "*.parquet")])[0].metadata_list
        for path in sorted(m.path for m in files):
            day, _ = _day_of(path)
            stored = read_day_keys(client, target.table, dt.date.fromisoformat(day))
            rows = read_parquet(path)
            rows = rows.filter(pc.invert(pc.is_in(_keys(rows), value_set=_keys(stored))))
            if rows.num_rows:
                data = parquet_bytes(rows.select(schema.names).cast(schema))
                load_parquet(client, target.table, data, load_job_id(run_id, target.table, data))
                loaded += rows.num_rows
        FileSystems.delete([folder])
        notes.append(f"loaded {loaded} events archived but not loaded by interrupted run {run_id}")
    return notes
