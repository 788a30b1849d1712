"""Fixed windows of the stream writers: which window a row falls in, and which rows are late.

Pure functions, no Beam. Times are int64 microseconds since the epoch, UTC.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.core.stream_time import micros


def window_starts(times_us: np.ndarray, window_us: int) -> np.ndarray:
    """The start (us) of the fixed window each time falls in."""
    return np.floor_divide(times_us, window_us) * window_us


def split_by_window(
    table: pa.Table, time_column: str, window_us: int
) -> list[tuple[int, pa.Table]]:
    """[(window start us, rows of that window)], windows in ascending order."""
    if table.num_rows == 0:
        return []
    starts = window_starts(micros(table[time_column]), window_us)
    order = np.argsort(starts, kind="stable")
    ordered = starts[order]
    bounds = [0, *(np.flatnonzero(np.diff(ordered)) + 1).tolist(), len(ordered)]
    return [
        (int(ordered[lo]), table.take(pa.array(order[lo:hi])))
        for lo, hi in itertools.pairwise(bounds)
    ]


@dataclass(frozen=True)
class LatenessSplit:
    on_time: pa.Table  # events whose window is still open: written as files of that window
    late: pa.Table  # events whose window had closed: written as further files of their day


def split_late(
    events: pa.Table, arrived_us: int, window_us: int, lateness_us: int
) -> LatenessSplit:
    """Separate events whose window had closed for good when they arrived.

    A window [s, s + window) is kept open (its rows buffered in state) until
    s + window + lateness of stream time. `arrived_us` is the stream time of the
    chunk (the publish time of its oldest message): deterministic, so a redelivered
    chunk is classified the same way. Late events are ordinary events: the caller
    writes them to their own day's partition.
    """
    if events.num_rows == 0:
        return LatenessSplit(events, events)
    ends = window_starts(micros(events["timestamp"]), window_us) + window_us + lateness_us
    late_mask = pa.array(ends <= arrived_us)
    return LatenessSplit(events.filter(pc.invert(late_mask)), events.filter(late_mask))
