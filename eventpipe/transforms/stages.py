"""The Beam stages: thin wrappers running the pure, vectorised stage logic.

Each element is an Arrow table of thousands of records or events. Each stage
returns its main output and its failed output (tagged `FAILED_TAG`); the pipeline
flattens every failed output into one failed sink.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from eventpipe.core import arrow_coder  # noqa: F401  (registers the coder of pa.Table)
from eventpipe.core.duck import connect
from eventpipe.core.metrics import emit
from eventpipe.schemas.failures import dropped_bots
from eventpipe.schemas.outputs import BOTS, FAILED_TAG, MAIN_TAG, NAMESPACE, READ
from eventpipe.transforms.enrich import Enricher, EnrichOptions
from eventpipe.transforms.normalise import EventNormaliser
from eventpipe.transforms.parse import RecordParser
from eventpipe.transforms.validate import EventValidator


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
        self.read = Metrics.counter(NAMESPACE, READ)

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
        self.bots = Metrics.counter(NAMESPACE, BOTS)

    def teardown(self) -> None:
        self.enricher.teardown()

    def process(self, events: pa.Table) -> Iterator:
        result = self.enricher.enrich(events)
        self.bots.inc(result.stats.bots)
        yield from emit(result.events, dropped_bots(result.bots, self.run_id))


class _Stage(beam.PTransform):
    def __init__(self, fn: beam.DoFn) -> None:
        super().__init__()
        self.fn = fn

    def expand(self, pcoll: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        stage = beam.ParDo(self.fn).with_output_types(pa.Table)
        outputs = pcoll | stage.with_outputs(FAILED_TAG, main=MAIN_TAG)
        return outputs[MAIN_TAG], outputs[FAILED_TAG]


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
