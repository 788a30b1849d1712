"""Stream time as int64 microseconds since the epoch (UTC), and the keyed elements of the
stateful streaming steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from apache_beam.utils.timestamp import Timestamp

US = 1_000_000

Keyed = tuple[int, pa.Table]
"""(shard, table): the elements of the stateful steps; an int key has a deterministic coder."""


def ts_us(timestamp: Timestamp) -> int:
    """A Beam timestamp in microseconds."""
    return int(timestamp.micros)


def micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column as int64 microseconds since the epoch (nulls are not expected)."""
    return (
        pc.cast(column, pa.timestamp("us", tz="UTC"))
        .cast(pa.int64())
        .to_numpy(zero_copy_only=False)
    )
