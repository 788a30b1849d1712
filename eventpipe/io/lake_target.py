"""`LakeSink`: the Parquet lake as a `Sink` (events, failed rows and the raw archive)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import apache_beam as beam

from eventpipe.io.lake import lake_path, write_run_summary
from eventpipe.io.lake_sink import WriteToLake
from eventpipe.io.sink import CommitFiles
from eventpipe.io.stream_writers import WriteWindowedEvents


@dataclass(frozen=True)
class LakeSink:
    """Events to `LAKE/events`, failed rows to `LAKE/failed`, the archive to `LAKE/raw`,
    run summaries to `LAKE/_runs`; created when missing."""

    lake: str

    def describe(self) -> str:
        return self.lake

    def prepare(self) -> list[str]:
        return []  # the writers create the folders they write

    def recover(self) -> list[str]:
        return []  # the lake's own recovery (jobs.common.run_locked) finishes its runs

    @contextmanager
    def for_run(self, beam_args: list[str]) -> Iterator[LakeSink]:
        del beam_args  # the lake stages its own files
        yield self

    def write_batch(
        self, run_id: str, run_start: datetime, buckets: int, commit_with: CommitFiles = ()
    ) -> beam.PTransform:
        del run_start  # the lake's rows carry it already
        return WriteToLake(self.lake, run_id, buckets, commit_with=commit_with)

    def replace_days(
        self, run_id: str, run_start: datetime, partitions: Sequence[str], buckets: int
    ) -> beam.PTransform:
        del run_start
        return WriteToLake(self.lake, run_id, buckets, replace=tuple(partitions))

    def write_stream(
        self, run_id: str, run_start: datetime, window_s: int, allowed_lateness_s: float
    ) -> beam.PTransform:
        del run_start
        return _WriteStream(WriteWindowedEvents(self.lake, run_id, window_s, allowed_lateness_s))

    def record_run(self, run_id: str, summary: dict) -> str:
        return write_run_summary(self.lake, run_id, summary)

    def outputs(self) -> str:
        return (
            f"events: {lake_path(self.lake, 'events')}   failed: {lake_path(self.lake, 'failed')}"
        )


class _WriteStream(beam.PTransform):
    """The lake refuses no row: the window writer's output is not a failed output."""

    def __init__(self, write: beam.PTransform) -> None:
        super().__init__()
        self.write = write

    def expand(self, keyed: beam.PCollection) -> None:
        _ = keyed | self.write
