"""The reprocess graph: LAKE/raw partitions -> validate -> normalise -> enrich -> stitch -> sink.

Reprocessing starts from the raw archive (`LAKE/raw/date=D/`: each stored event as
parsed, with its effective receivedAt and connectionId; see io.lake_sink), not from
the stored rows: a stored row no longer tells which browser, location or campaign
fields the client sent and which the enrichment derived, so only the archive can be
enriched again with a new GeoIP database or new user-agent rules. Events are
validated again too: an event the current rules reject goes to the failed table.

The sink replaces each partition of the range whole (the lake: events and raw, in one
lake transaction, io.lake_transaction; BigQuery: the day partitions); an event whose
recomputed date falls outside the range is added to that partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from eventpipe.identity.stitch_stage import StitchKpids
from eventpipe.io.sink import Sink
from eventpipe.schemas.outputs import NAMESPACE, READ
from eventpipe.schemas.records import PARSED_SCHEMA
from eventpipe.transforms.enrich import EnrichOptions
from eventpipe.transforms.stages import EnrichEvents, NormaliseEvents, ValidateEvents

ARCHIVE_BATCH_ROWS = 32_768


@dataclass(frozen=True)
class ReprocessConfig:
    """What one reprocess run needs; built by the job from its flags."""

    sink: Sink
    identity: str  # the lake whose identity map gives kpids
    run_id: str
    run_start: datetime
    partitions: tuple[str, ...]  # `date=D` names to replace
    raw_files: tuple[str, ...]  # the archive files of those partitions
    enrich: EnrichOptions | None = field(default_factory=EnrichOptions)
    dedupe_buckets: int = 4


class _ReadArchive(beam.DoFn):
    """A raw/ file -> tables of archived events (PARSED_SCHEMA), counted as `read`."""

    def setup(self) -> None:
        self.read = Metrics.counter(NAMESPACE, READ)

    def process(self, path: str) -> Iterator[pa.Table]:
        with FileSystems.open(path) as handle:
            archive = pq.ParquetFile(handle)
            for batch in archive.iter_batches(batch_size=ARCHIVE_BATCH_ROWS):
                self.read.inc(batch.num_rows)
                yield pa.Table.from_batches([batch]).cast(PARSED_SCHEMA)


def build_reprocess_pipeline(pipeline: beam.Pipeline, config: ReprocessConfig) -> None:
    """Add the reprocess graph to `pipeline`."""
    run, start = config.run_id, config.run_start
    archived = (
        pipeline
        | "ListArchive" >> beam.Create(list(config.raw_files))
        | "ReadArchive" >> beam.ParDo(_ReadArchive())
    )
    valid, invalid = archived | "ValidateEvents" >> ValidateEvents(run, start)
    events, unnormalised = valid | "NormaliseEvents" >> NormaliseEvents(run, start, None)
    failures = [invalid, unnormalised]
    if config.enrich is not None:
        events, bots = events | "EnrichEvents" >> EnrichEvents(config.enrich, run)
        failures.append(bots)
    events = events | "StitchKpids" >> StitchKpids(config.identity)
    failed = tuple(failures) | "AllFailed" >> beam.Flatten()
    _ = (events, failed) | "Replace" >> config.sink.replace_days(
        run, start, config.partitions, config.dedupe_buckets
    )
