"""The import's stage chain in one process: records -> parse -> validate -> normalise -> enrich.

The same stage logic the Beam stages (`stages.py`) wrap, for callers that process one
table of records at a time outside a Beam pipeline (the continuous ingester, event
listeners). One DuckDB session and one set of enrichment databases per chain: open it
once, run it on many tables, close it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from eventpipe.core.duck import connect
from eventpipe.schemas.failures import dropped_bots, empty_failed
from eventpipe.transforms.enrich import Enricher, EnrichOptions
from eventpipe.transforms.normalise import EventNormaliser
from eventpipe.transforms.parse import RecordParser
from eventpipe.transforms.validate import EventValidator


@dataclass(frozen=True)
class ChainResult:
    events: pa.Table  # event-table rows (enriched unless the chain has no enrichment)
    failed: pa.Table  # failures.FAILED_SCHEMA: every stage's rejected records and events
    read: int  # events found + records rejected whole (the `read` of the run summary)


class StageChain:
    """parse -> validate -> normalise -> enrich on one Arrow table of raw records."""

    def __init__(
        self,
        run_id: str,
        run_start: datetime,
        default_connection: int | None = None,
        enrich: EnrichOptions | None = None,
    ) -> None:
        self.run_id = run_id
        con = self._con = connect()
        self.parser = RecordParser(run_id, run_start).bind(con)
        self.validator = EventValidator(run_id, run_start).bind(con)
        self.normaliser = EventNormaliser(run_id, run_start, default_connection).bind(con)
        self.enricher = Enricher(enrich) if enrich is not None else None
        if self.enricher is not None:
            self.enricher.setup()

    def run(self, records: pa.Table) -> ChainResult:
        """Raw records (`records.RECORD_SCHEMA`) -> events and failed rows."""
        parsed = self.parser.parse(records)
        validated = self.validator.validate(parsed.events)
        normalised = self.normaliser.normalise(validated.valid)
        failed = [parsed.failed, validated.failed, normalised.failed]
        events = normalised.events
        if self.enricher is not None:
            enriched = self.enricher.enrich(events)
            events = enriched.events
            failed.append(dropped_bots(enriched.bots, self.run_id))
        failed = [t for t in failed if t.num_rows]
        return ChainResult(
            events=events,
            failed=pa.concat_tables(failed) if failed else empty_failed(),
            read=parsed.units_read,
        )

    def close(self) -> None:
        if self.enricher is not None:
            self.enricher.teardown()
        self._con.close()

    def __enter__(self) -> StageChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
