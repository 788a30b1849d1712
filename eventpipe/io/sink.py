"""Where a run's events go: the one interface the lake and BigQuery implement.

A job builds its sink once from its flags (`jobs.sinks.sink_from_flags`); the pipelines
take it and call one of its writes; the job records the run through it. A new sink
(another warehouse) is one module implementing `Sink`, plus its tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol, runtime_checkable

import apache_beam as beam

CommitFiles = tuple[tuple[str, str], ...]
"""(staged file, final path) pairs a lake commit makes visible with the run's events."""


class SinkError(RuntimeError):
    """The sink cannot take this run's rows (e.g. an incompatible table): nothing was written."""


@runtime_checkable
class Sink(Protocol):
    """The destination of events and failed rows.

    The Beam transforms it returns take `(events, failed)` (two PCollections of Arrow
    tables) for the batch writes, and the deduplicated `(shard, events)` of a stream.
    """

    def describe(self) -> str:
        """Where the events go, for the log (a lake folder, a table)."""
        ...

    def prepare(self) -> list[str]:
        """Before the pipeline: create or upgrade what the sink needs; what it did, one line
        per change. Raises SinkError before any row is written when it cannot take them."""
        ...

    def recover(self) -> list[str]:
        """Holding the lake's writer lock, before the lake's recovery: finish what dead runs
        left in the sink (BigQuery: load what they archived and did not load); a note each."""
        ...

    def for_run(self, beam_args: list[str]) -> AbstractContextManager[Sink]:
        """The sink for the duration of one batch run (e.g. with a staging folder)."""
        ...

    def write_batch(
        self, run_id: str, run_start: datetime, buckets: int, commit_with: CommitFiles = ()
    ) -> beam.PTransform:
        """Import: add the new events (deduplicated against the sink) and the failed rows.
        `commit_with`: (staged, final) files made visible with the events (lake only)."""
        ...

    def replace_days(
        self, run_id: str, run_start: datetime, partitions: Sequence[str], buckets: int
    ) -> beam.PTransform:
        """Reprocess: replace the `date=D` partitions whole with the events; add the failed rows."""
        ...

    def write_stream(
        self, run_id: str, run_start: datetime, window_s: int, allowed_lateness_s: float
    ) -> beam.PTransform:
        """Stream: write the `(shard, events)` as they come; returns the PCollection of rows
        the sink refused (failed rows), or None when it refuses none."""
        ...

    def record_run(self, run_id: str, summary: dict) -> str:
        """Record a finished run's summary; where it was recorded."""
        ...

    def outputs(self) -> str:
        """Where the events and failed rows are, for the printed summary."""
        ...
