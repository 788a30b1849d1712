"""The Beam stage that fills kpids from the lake's identity map (`StitchKpids`)."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import duckdb
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Timestamp

from eventpipe.core import arrow_coder  # noqa: F401  (registers the coder of pa.Table)
from eventpipe.core.duck import connect
from eventpipe.identity.stitch import KpidStitcher
from eventpipe.identity.store import current_kpid_map, kpid_map_version
from eventpipe.schemas.outputs import KPID_MAP_LOADS, NAMESPACE


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
        self.loads = Metrics.counter(NAMESPACE, KPID_MAP_LOADS)
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
