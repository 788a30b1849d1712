"""The batch import graph: files -> parse -> validate -> normalise -> enrich -> stitch -> sink.

Stitching gives new events of known profiles their kpid from the identity lake's map
(`eventpipe identity` resolves new identities and re-stitches stored events); the
sink (io.sink: the lake, BigQuery) deduplicates and writes events and failed rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import apache_beam as beam

from eventpipe.identity.stitch_stage import StitchKpids
from eventpipe.io.raw_files import CHUNK_BYTES, ReadRawRecords
from eventpipe.io.sink import CommitFiles, Sink
from eventpipe.transforms.enrich import EnrichOptions
from eventpipe.transforms.stages import EnrichEvents, NormaliseEvents, ParseRecords, ValidateEvents


@dataclass(frozen=True)
class ImportConfig:
    """What one import run needs; built by the job from its flags."""

    files: Sequence[str | tuple[str, int]]  # paths, or (path, size): see io.raw_files
    sink: Sink
    identity: str | None  # the lake whose identity map gives kpids (None: no stitching)
    run_id: str
    run_start: datetime
    default_connection: int | None = None
    enrich: EnrichOptions | None = field(default_factory=EnrichOptions)  # None: no enrichment
    chunk_bytes: int = CHUNK_BYTES
    dedupe_buckets: int = 4  # see io.lake_sink.dedupe_buckets
    # (staged, final) files made visible by the lake commit (the landing ledger, see io.landing)
    commit_with: CommitFiles = ()


def apply_stages(
    records: beam.PCollection,
    run_id: str,
    run_start: datetime,
    default_connection: int | None,
    enrich: EnrichOptions | None,
) -> tuple[beam.PCollection, list[beam.PCollection]]:
    """Record chunks -> parse -> validate -> normalise -> enrich: (events, every failed output).

    The stage chain every ingest graph shares (import, stream).
    """
    parsed, parse_failed = records | "ParseRecords" >> ParseRecords(run_id, run_start)
    valid, invalid = parsed | "ValidateEvents" >> ValidateEvents(run_id, run_start)
    normalised, unnormalised = valid | "NormaliseEvents" >> NormaliseEvents(
        run_id, run_start, default_connection
    )
    failures = [parse_failed, invalid, unnormalised]
    events = normalised
    if enrich is not None:
        events, bots = normalised | "EnrichEvents" >> EnrichEvents(enrich, run_id)
        failures.append(bots)
    return events, failures


def build_import_pipeline(pipeline: beam.Pipeline, config: ImportConfig) -> None:
    """Add the import graph to `pipeline`: every stage's failed output goes to one failed sink."""
    run, start = config.run_id, config.run_start
    records, unread = pipeline | "ReadRecords" >> ReadRawRecords(
        config.files, run, start, config.chunk_bytes
    )
    events, failures = apply_stages(records, run, start, config.default_connection, config.enrich)
    failures.append(unread)  # what the reader rejects: bad files, bad UTF-8, too large
    if config.identity is not None:
        events = events | "StitchKpids" >> StitchKpids(config.identity)
    failed = tuple(failures) | "AllFailed" >> beam.Flatten()
    _ = (events, failed) | "Write" >> config.sink.write_batch(
        run, start, config.dedupe_buckets, config.commit_with
    )
