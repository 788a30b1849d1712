"""The Beam stages: thin wrappers running the pure, vectorised stage logic.

Each element is an Arrow table of thousands of records or events. Each stage
returns its main output and its failed output (tagged `FAILED`); the pipeline
flattens every failed output into one failed sink.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any

import apache_beam as beam
import duckdb
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Timestamp

from eventpipe.core import arrow_coder  # noqa: F401  (registers the coder of pa.Table)
from eventpipe.core.duck import connect
from eventpipe.identity.stitch import KpidStitcher
from eventpipe.identity.store import current_kpid_map, kpid_map_version
from eventpipe.schemas.failures import count_by_reason, dropped_bots
from eventpipe.transforms.enrich import Enricher, EnrichOptions
from eventpipe.transforms.normalise import EventNormaliser
from eventpipe.transforms.parse import RecordParser
from eventpipe.transforms.validate import EventValidator

MAIN = "main"
FAILED = "failed"
NAMESPACE = "eventpipe"


def count_failed(failed: pa.Table) -> None:
    """Add the failed rows to the `failed` counter and to one counter per reason."""
    for reason, n in count_by_reason(failed).items():
        Metrics.counter(NAMESPACE, f"failed.{reason}").inc(n)


def emit(main: pa.Table, failed: pa.Table) -> Iterator:
    """A stage's outputs: the main table, and the failed rows (counted) tagged FAILED."""
    if main.num_rows:
        yield main
    if failed.num_rows:
        count_failed(failed)
        yield beam.pvalue.TaggedOutput(FAILED, failed)


class _StageFn(beam.DoFn):
    """Runs one vectorised stage; its DuckDB session and planned SQL are made in setup."""

    def __init__(self, make_logic: Callable[[], Any]) -> None:
        self.make_logic = make_logic  # picklable factory of the stage logic (has bind(con))

    def setup(self) -> None:
        self.con = connect()
        self.logic = self.make_logic().bind(self.con)

    def teardown(self) -> None:
        self.con.close()


class _ParseFn(_StageFn):
    def setup(self) -> None:
        super().setup()
        self.read = Metrics.counter(NAMESPACE, "read")

    def process(self, records: pa.Table) -> Iterator:
        result = self.logic.parse(records)
        self.read.inc(result.units_read)
        yield from emit(result.events, result.failed)


class _ValidateFn(_StageFn):
    def process(self, events: pa.Table) -> Iterator:
        result = self.logic.validate(events)
        yield from emit(result.valid, result.failed)


class _NormaliseFn(_StageFn):
    def process(self, valid: pa.Table) -> Iterator:
        result = self.logic.normalise(valid)
        yield from emit(result.events, result.failed)


class _EnrichFn(beam.DoFn):
    """Runs the enrichment; its databases and parsers load once per worker, in setup."""

    def __init__(self, options: EnrichOptions, run_id: str) -> None:
        self.enricher = Enricher(options)
        self.run_id = run_id

    def setup(self) -> None:
        self.enricher.setup()
        self.bots = Metrics.counter(NAMESPACE, "bots")

    def teardown(self) -> None:
        self.enricher.teardown()

    def process(self, events: pa.Table) -> Iterator:
        result = self.enricher.enrich(events)
        self.bots.inc(result.stats.bots)
        yield from emit(result.events, dropped_bots(result.bots, self.run_id))


@beam.typehints.with_output_types(pa.Table)
class _StitchFn(beam.DoFn):
    """Fills kpids from the lake's identity map: loaded once in setup (`refresh_us` None), or
    looked at again each `refresh_us` of stream time and re-read when the file changed."""

    def __init__(self, lake: str, refresh_us: int | None) -> None:
        self.lake = lake
        self.refresh_us = refresh_us

    def setup(self) -> None:
        self.con: duckdb.DuckDBPyConnection | None = None
        self.stitcher: KpidStitcher | None = None
        self.loaded_at: int | None = None  # stream time (us) of the last look at the map
        self.version: tuple | None = None
        self.loads = Metrics.counter(NAMESPACE, "kpid_map.loads")
        if self.refresh_us is None:
            self._load()

    def teardown(self) -> None:
        if self.con is not None:
            self.con.close()

    def _load(self) -> None:
        kpid_map = current_kpid_map(self.lake)
        if kpid_map.num_rows and self.con is None:
            self.con = connect()
        self.stitcher = KpidStitcher(kpid_map).bind(self.con) if kpid_map.num_rows else None

    def _refresh(self, now_us: int) -> None:
        if self.loaded_at is not None and now_us < self.loaded_at + self.refresh_us:
            return
        self.loaded_at = now_us
        version = kpid_map_version(self.lake)
        if version == self.version:
            return
        self.version = version
        self._load()
        self.loads.inc()

    def process(
        self, events: pa.Table, timestamp: Timestamp = beam.DoFn.TimestampParam
    ) -> Iterator[pa.Table]:
        if self.refresh_us is not None:
            self._refresh(int(timestamp.micros))
        yield events if self.stitcher is None else self.stitcher.stitch(events)


class StitchKpids(beam.PTransform):
    """Events -> events with the kpid of their profile from `LAKE/identity/kpid_map.parquet`
    (userId's, else anonymousId's, else null; no map yet: null).

    Batch (`refresh_s` None): the map is read once per worker. Streaming: the map is looked
    at again once the stream time has moved `refresh_s` past the last look, and re-read when
    the file changed. New identities are resolved by the batch identity job (`eventpipe
    identity`), which also re-stitches stored events: an event of a person the map does not
    know yet keeps kpid null until then.
    """

    def __init__(self, lake: str, refresh_s: float | None = None) -> None:
        super().__init__()
        self.lake = lake
        self.refresh_s = refresh_s

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        refresh_us = None if self.refresh_s is None else int(self.refresh_s * 1_000_000)
        return pcoll | beam.ParDo(_StitchFn(self.lake, refresh_us))


class _Stage(beam.PTransform):
    def __init__(self, fn: beam.DoFn) -> None:
        super().__init__()
        self.fn = fn

    def expand(self, pcoll: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        stage = beam.ParDo(self.fn).with_output_types(pa.Table)
        outputs = pcoll | stage.with_outputs(FAILED, main=MAIN)
        return outputs[MAIN], outputs[FAILED]


class ParseRecords(_Stage):
    """Record chunks -> (event chunks, failed records). Counts `read`."""

    def __init__(self, run_id: str, run_start: datetime) -> None:
        super().__init__(_ParseFn(partial(RecordParser, run_id, run_start)))


class ValidateEvents(_Stage):
    """Event chunks -> (valid typed events, failed events)."""

    def __init__(self, run_id: str, run_start: datetime) -> None:
        super().__init__(_ValidateFn(partial(EventValidator, run_id, run_start)))


class EnrichEvents(_Stage):
    """Event rows -> (enriched rows, bots dropped by `drop_bots`, as failed rows)."""

    def __init__(self, options: EnrichOptions, run_id: str) -> None:
        super().__init__(_EnrichFn(options, run_id))


class NormaliseEvents(_Stage):
    """Valid events -> (event-table rows, failed events: unknown connection)."""

    def __init__(self, run_id: str, run_start: datetime, default_connection: int | None) -> None:
        super().__init__(
            _NormaliseFn(partial(EventNormaliser, run_id, run_start, default_connection))
        )
