"""Streaming logic on Arrow tables: windows, lateness, event age, deduplication.

Pure functions, no Beam: the stateful streaming DoFns (`streaming_stages`) keep
their state as Arrow tables and call these.

Times are int64 microseconds since the epoch, UTC (Arrow's `timestamp("us")`).
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.schemas.failures import PROBLEM_TYPE, TOO_OLD, failed_rows

SEEN_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("at", pa.int64())])
"""Deduplication state: one row per key seen, with the time (us) it was seen at."""


def micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column as int64 microseconds since the epoch (nulls are not expected)."""
    return (
        pc.cast(column, pa.timestamp("us", tz="UTC"))
        .cast(pa.int64())
        .to_numpy(zero_copy_only=False)
    )


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


def shard_of(table: pa.Table, shards: int) -> np.ndarray:
    """A shard number (0..shards-1) per event, from a stable hash (CRC-32) of its dedupe key."""
    keys = dedupe_keys(table).to_pylist()
    return np.fromiter((zlib.crc32(k.encode()) % shards for k in keys), np.int64, len(keys))


def dedupe_keys(events: pa.Table) -> pa.Array:
    """The deduplication key of each event: `connectionId:messageId`."""
    connection = pc.cast(events["connectionId"], pa.string()).fill_null("")
    return pc.binary_join_element_wise(connection, events["messageId"], ":").combine_chunks()


@dataclass(frozen=True)
class DedupeResult:
    unique: pa.Table  # the events not seen before, first copy of each key
    duplicates: int  # rows removed
    seen: pa.Table  # the new state (SEEN_SCHEMA)


def drop_seen(events: pa.Table, seen: pa.Table, now_us: int, expiry_us: int) -> DedupeResult:
    """Drop events whose key was seen (in `seen` or earlier in `events`); update and prune `seen`.

    `now_us` is the stream time of this batch (its newest receivedAt): keys seen
    more than `expiry_us` before it are forgotten, so the state stays bounded.
    """
    seen = prune_seen(seen, now_us - expiry_us)
    keys = dedupe_keys(events)
    fresh = pc.invert(pc.is_in(keys, value_set=seen["key"].combine_chunks()))
    fresh_idx = pa.array(np.flatnonzero(fresh.to_numpy(zero_copy_only=False)), pa.int64())
    # First copy of each key within the batch.
    firsts = (
        pa.table({"key": keys.take(fresh_idx), "row": fresh_idx})
        .group_by("key", use_threads=False)
        .aggregate([("row", "min")])
    )
    keep = pc.sort_indices(firsts["row_min"])
    keep = firsts["row_min"].take(keep)
    unique = events.take(keep)
    added = pa.table(
        {"key": keys.take(keep), "at": pa.array(np.full(len(keep), now_us), pa.int64())},
        schema=SEEN_SCHEMA,
    )
    return DedupeResult(unique, events.num_rows - unique.num_rows, pa.concat_tables([seen, added]))


def prune_seen(seen: pa.Table, before_us: int) -> pa.Table:
    """The keys seen at or after `before_us`."""
    return seen.filter(pc.greater_equal(seen["at"], before_us))


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


@dataclass(frozen=True)
class AgeSplit:
    kept: pa.Table  # events younger than the maximum age
    too_old: pa.Table  # failed rows, reason `too_old`


def split_too_old(events: pa.Table, arrived_us: int, max_age_us: int, run_id: str) -> AgeSplit:
    """Separate events whose `timestamp` is more than `max_age_us` before `arrived_us`.

    The opt-in bound on event age (`stream --max-event-age`): what it rejects becomes
    failed rows (reason `too_old`, field `timestamp`, the event row as JSON in `raw`).
    """
    times = micros(events["timestamp"]) if events.num_rows else np.zeros(0, np.int64)
    old_mask = times < arrived_us - max_age_us
    if not old_mask.any():
        return AgeSplit(events, failed_rows_too_old(events.slice(0, 0), [], run_id))
    old = events.filter(pa.array(old_mask))
    limit = _iso(arrived_us - max_age_us)
    messages = [
        f"event time {_iso(ts)} is more than the maximum event age "
        f"{max_age_us / 1e6:g}s before the event arrived ({_iso(arrived_us)}): before {limit}"
        for ts in times[old_mask].tolist()
    ]
    return AgeSplit(events.filter(pa.array(~old_mask)), failed_rows_too_old(old, messages, run_id))


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat()


def failed_rows_too_old(events: pa.Table, messages: list[str], run_id: str) -> pa.Table:
    """Failed rows (reason `too_old`) for events past the maximum age; `raw` is the event row
    as JSON."""
    import orjson

    n = events.num_rows
    problems = [{"reason": TOO_OLD, "field": "timestamp", "message": m} for m in messages]
    rows = pa.table(
        {
            "problem": pa.array(problems, PROBLEM_TYPE),
            "received_at": events["receivedAt"]
            if n
            else pa.array([], pa.timestamp("us", tz="UTC")),
            "source": pa.array(["(stream --max-event-age)"] * n, pa.string()),
            "line": pa.array([0] * n, pa.int64()),
            "connection_id": events["connectionId"] if n else pa.array([], pa.int32()),
            "raw": pa.array(
                [orjson.dumps(r, default=str).decode() for r in events.to_pylist()], pa.string()
            ),
        }
    )
    return failed_rows(rows, "raw", run_id, None, record_level=True)
