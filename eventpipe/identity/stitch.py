"""Re-stitching events: fill `kpid` from the kpid map (`transforms.stitch.KpidStitcher`)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from eventpipe.transforms.stitch import KpidStitcher


def assign_kpids(
    con: duckdb.DuckDBPyConnection,
    events: pa.Table | duckdb.DuckDBPyRelation,
    kpid_map: pa.Table,
) -> pa.Table:
    """`events` with `kpid` filled from `kpid_map`; every other column and the row order kept.

    kpid of the userId as a 'user' id, else of the anonymousId as an 'anonymous' id,
    else null (`Resolution.kpid_of_event`; placeholders are never in the map). An
    existing `kpid` column is replaced in place, otherwise one is appended.
    """
    if isinstance(events, duckdb.DuckDBPyRelation):
        events = events.to_arrow_table()
    return KpidStitcher(kpid_map).bind(con).stitch(events)
