"""Streaming logic on Arrow tables: shards, event age, deduplication (windows: io.stream_windows).

Pure functions, no Beam: the stateful streaming DoFns (`stream_stages`) keep
their state as Arrow tables and call these.

Times are int64 microseconds since the epoch, UTC (Arrow's `timestamp("us")`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.core.stream_time import micros
from eventpipe.schemas.failures import PROBLEM_TYPE, TOO_OLD, failed_rows

SEEN_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("at", pa.int64())])
"""Deduplication state: one row per key seen, with the time (us) it was seen at."""


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
