"""The coder of the Arrow tables the stages pass on."""

from __future__ import annotations

from datetime import UTC, datetime

import apache_beam as beam
import pyarrow as pa

from eventpipe.core.arrow_coder import ArrowTableCoder
from eventpipe.transforms.stages import ParseRecords

TABLE = pa.table(
    {
        "messageId": pa.array(["a", None, "c"]),
        "n": pa.array([1, 2, 3], pa.int16()),
        "context": pa.array([{"ip": "1.2.3.4"}, None, {"ip": None}]),
        "dict": pa.array(["x", "y", "x"]).dictionary_encode(),
    }
)


def test_round_trip_keeps_types_and_values():
    coder = ArrowTableCoder()
    restored = coder.decode(coder.encode(TABLE))
    assert restored.schema == TABLE.schema
    assert restored.equals(TABLE)


def test_a_slice_is_encoded_alone():
    coder = ArrowTableCoder()
    big = pa.table({"text": ["x" * 1000] * 1000})
    assert len(coder.encode(big.slice(0, 1))) < 10_000


def test_size_is_estimated_without_encoding():
    class Counting(ArrowTableCoder):
        encoded = 0

        def encode(self, table: pa.Table) -> bytes:
            Counting.encoded += 1
            return super().encode(table)

    coder = Counting()
    assert coder.estimate_size(TABLE) == TABLE.nbytes
    assert coder.get_impl().estimate_size(TABLE) == TABLE.nbytes
    assert Counting.encoded == 0


def test_the_stages_outputs_use_it():
    pipeline = beam.Pipeline()
    records = pipeline | beam.Create([TABLE]).with_output_types(pa.Table)
    events, _ = records | ParseRecords("run", datetime(2026, 1, 1, tzinfo=UTC))
    coder = beam.coders.registry.get_coder(events.element_type)
    assert isinstance(coder, ArrowTableCoder)


def test_the_sources_and_key_shuffle_use_it():
    from eventpipe.io.lake_sink import _BucketKeys, _ReadLakeKeys
    from eventpipe.io.raw_files import _ReadChunks

    pipeline = beam.Pipeline()
    paths = pipeline | beam.Create(["a"])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for fn in (_ReadChunks("run", start, 1), _ReadLakeKeys("lake"), _BucketKeys(4)):
        out = paths | type(fn).__name__ >> beam.ParDo(fn)
        coder = beam.coders.registry.get_coder(out.element_type)
        assert "ArrowTableCoder" in repr(coder)
