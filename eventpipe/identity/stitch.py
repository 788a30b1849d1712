"""Stitching: give each event the kpid of its profile, from the identity map.

The map (`LAKE/identity/kpid_map.parquet`: kind 'user'|'anonymous', id, kpid) is
what `eventpipe identity` builds (rules: identity.rules). An event gets
the kpid of its userId, else of its anonymousId, else none; every other column and
the row order stay as they are.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

_STITCH = """
    SELECT coalesce(u.kpid, a.kpid) AS kpid
    FROM stitch_input e
    LEFT JOIN kpid_users u ON u.id = e.userId
    LEFT JOIN kpid_anonymous a ON a.id = e.anonymousId
    ORDER BY e.stitch_row
"""


class KpidStitcher:
    """Holds one kpid map in a DuckDB session; `stitch` fills the kpid of event tables."""

    def __init__(self, kpid_map: pa.Table) -> None:
        self.kpid_map = kpid_map
        self.con: duckdb.DuckDBPyConnection | None = None

    def bind(self, con: duckdb.DuckDBPyConnection) -> KpidStitcher:
        """Load the map into `con` as two indexed lookup tables."""
        con.register("kpid_map_input", self.kpid_map)
        for kind, table in (("user", "kpid_users"), ("anonymous", "kpid_anonymous")):
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS "
                f"SELECT id, kpid FROM kpid_map_input WHERE kind = '{kind}'"
            )
        con.unregister("kpid_map_input")
        self.kpid_map = None  # the session holds it now
        self.con = con
        return self

    def stitch(self, events: pa.Table) -> pa.Table:
        """`events` with `kpid` set from the map (the column's type is kept)."""
        assert self.con is not None, "bind() the stitcher to a DuckDB session first"
        ids = events.select(["userId", "anonymousId"]).append_column(
            "stitch_row", pa.array(range(events.num_rows), pa.int64())
        )
        self.con.register("stitch_input", ids)
        try:
            kpids = self.con.sql(_STITCH).to_arrow_table()["kpid"]
        finally:
            self.con.unregister("stitch_input")
        if "kpid" not in events.column_names:
            return events.append_column(pa.field("kpid", pa.string()), kpids.cast(pa.string()))
        index = events.schema.get_field_index("kpid")
        field = events.schema.field(index)
        return events.set_column(index, field, kpids.cast(field.type))


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
