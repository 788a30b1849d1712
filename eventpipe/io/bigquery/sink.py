"""`BigQuerySink`: a BigQuery event table and its failed table as a `Sink`."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from eventpipe.io.bigquery.staged import load_archived_not_loaded
from eventpipe.io.bigquery.tables import BigQueryTarget, prepare_tables, record_run
from eventpipe.io.bigquery.writers import InsertToBigQuery, ReplaceDayPartitions, WriteToBigQuery
from eventpipe.io.sink import CommitFiles


@dataclass(frozen=True)
class BigQuerySink:
    """Events and failed rows to `target`'s tables, run summaries to `DATASET.eventpipe_runs`.

    `lake` (optional): batch writes stage their files in it and archive the loaded events
    in its raw/ (for `eventpipe reprocess`); without it they stage in `target.staging`.
    """

    target: BigQueryTarget
    lake: str | None = None

    def describe(self) -> str:
        return self.target.table

    def prepare(self) -> list[str]:
        return prepare_tables(self.target)

    def recover(self) -> list[str]:
        return load_archived_not_loaded(self.lake, self.target) if self.lake else []

    @contextmanager
    def for_run(self, beam_args: list[str]) -> Iterator[BigQuerySink]:
        """With a folder to stage batch loads in: the lake, else --bq-staging, else Beam's
        --temp_location, else a new local temporary folder, deleted afterwards."""
        if self.lake or self.target.staging:
            yield self
            return
        temp = PipelineOptions(beam_args).view_as(GoogleCloudOptions).temp_location
        if temp:
            yield replace(self, target=replace(self.target, staging=temp))
            return
        with tempfile.TemporaryDirectory(prefix="eventpipe-bq-") as local:
            yield replace(self, target=replace(self.target, staging=local))

    def write_batch(
        self, run_id: str, run_start: datetime, buckets: int, commit_with: CommitFiles = ()
    ) -> beam.PTransform:
        if commit_with:
            raise ValueError("BigQuery commits no lake files with its loads")
        staging = self.lake or self.target.staging
        return WriteToBigQuery(
            self.target, run_id, run_start, staging, buckets, archive=bool(self.lake)
        )

    def replace_days(
        self, run_id: str, run_start: datetime, partitions: Sequence[str], buckets: int
    ) -> beam.PTransform:
        days = tuple(p.removeprefix("date=") for p in partitions)
        staging = self.lake or self.target.staging
        return ReplaceDayPartitions(self.target, run_id, run_start, days, staging, buckets)

    def write_stream(
        self, run_id: str, run_start: datetime, window_s: int, allowed_lateness_s: float
    ) -> beam.PTransform:
        return _InsertStream(
            InsertToBigQuery(self.target, run_id, run_start, window_s, allowed_lateness_s)
        )

    def record_run(self, run_id: str, summary: dict) -> str:
        return record_run(self.target, run_id, datetime.now(UTC), summary)

    def outputs(self) -> str:
        return f"events: {self.target.table}   failed: {self.target.failed_table}"


class _InsertStream(beam.PTransform):
    """(shard, events) -> the insert API; returns the rows it refused."""

    def __init__(self, insert: InsertToBigQuery) -> None:
        super().__init__()
        self.insert = insert

    def expand(self, keyed: beam.PCollection) -> beam.PCollection:
        return keyed | "Events" >> beam.Values() | "Insert" >> self.insert
