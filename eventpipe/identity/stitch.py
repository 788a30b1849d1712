"""Re-stitching events: fill `kpid` from the kpid map, vectorised in DuckDB."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from eventpipe.transforms.duck import quote_str

ASSIGN_CHUNK_ROWS = 500_000
_ASSIGN_SQL = """
    WITH users AS (
        SELECT id, kpid FROM {kpid_map}
        WHERE kind = 'user' AND id IN (SELECT user_id FROM ep_assign_keys)
    ), anonymous AS (
        SELECT id, kpid FROM {kpid_map}
        WHERE kind = 'anonymous' AND id IN (SELECT anonymous_id FROM ep_assign_keys)
    )
    SELECT coalesce(u.kpid, a.kpid) AS kpid FROM ep_assign_keys k
    LEFT JOIN users u ON u.id = k.user_id
    LEFT JOIN anonymous a ON a.id = k.anonymous_id
    ORDER BY k.row
"""


def assign_kpids(
    con: duckdb.DuckDBPyConnection,
    events: pa.Table | duckdb.DuckDBPyRelation,
    kpid_map: pa.Table | str,
    chunk_rows: int = ASSIGN_CHUNK_ROWS,
) -> pa.Table:
    """`events` with `kpid` filled from `kpid_map`; every other column and the row order kept.

    kpid of the userId as a 'user' id, else of the anonymousId as an 'anonymous' id,
    else null (`Resolution.kpid_of_event`; placeholders are never in the map). An
    existing `kpid` column is replaced in place, otherwise one is appended.
    `kpid_map`: the Arrow map (`read_kpid_map`), or the path of a kpid_map Parquet file
    (`eventpipe.identity.store.kpid_map_path`), which DuckDB scans without loading it.
    Events go through in slices of `chunk_rows`, and each slice's hash tables hold
    only its own ids: DuckDB's memory follows the slice, not the partition or the map.
    """
    if isinstance(events, duckdb.DuckDBPyRelation):
        events = events.to_arrow_table()
    if isinstance(kpid_map, str):
        source = f"read_parquet({quote_str(kpid_map)})"
    else:
        con.register("ep_assign_map", kpid_map)
        source = "ep_assign_map"
    query = _ASSIGN_SQL.format(kpid_map=source)
    chunks = []
    try:
        for start in range(0, events.num_rows, chunk_rows):
            part = events.slice(start, chunk_rows)
            keys = pa.table(
                {
                    "row": pa.array(np.arange(part.num_rows, dtype=np.int64)),
                    "user_id": part["userId"],
                    "anonymous_id": part["anonymousId"],
                }
            )
            con.register("ep_assign_keys", keys)
            chunks.extend(con.sql(query).to_arrow_table()["kpid"].cast(pa.string()).chunks)
            con.unregister("ep_assign_keys")
    finally:
        if not isinstance(kpid_map, str):
            con.unregister("ep_assign_map")
    kpids = pa.chunked_array(chunks, pa.string())
    if "kpid" in events.column_names:
        index = events.column_names.index("kpid")
        return events.set_column(index, events.schema.field("kpid").with_nullable(True), kpids)
    return events.append_column(pa.field("kpid", pa.string()), kpids)
