"""Which accepted events each listener observes: the read API's filter compiler (DuckDB
dialect) run over a small Arrow table of the events, as the lake reader runs it over
Parquet; the matches in GET /v1/events' shape."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.api.filters import Predicate, compile_filter, table_source
from eventpipe.api.rows import events_from_table
from eventpipe.listeners.store import Matched
from eventpipe.schemas import TOP_LEVEL_COLUMNS
from eventpipe.serving.event_query import EventQuery, scoped_predicate

log = logging.getLogger(__name__)

TABLE = "accepted"
POSITION = "_position"


@dataclass(frozen=True)
class Watch:
    """A listener as matching needs it: its id and its filter, with its workspace
    restriction (the connections it may see in this group) in the predicate."""

    id: str
    predicate: Predicate
    limit: int  # the listener's size: the matches past it are only counted


def compile_listener_filter(filter_json: str | None) -> Predicate | None:
    """The predicate of a stored filter document (validated when the listener was made)."""
    return None if filter_json is None else compile_filter(orjson.loads(filter_json))


def watch(
    listener: str, predicate: Predicate | None, connections: Iterable[int], limit: int
) -> Watch:
    """`predicate` restricted to `connections` (the restriction first, as every read)."""
    query = EventQuery(connections=frozenset(connections), predicate=predicate)
    scoped = scoped_predicate(query)
    assert scoped is not None  # connections is a set: the restriction is always there
    return Watch(listener, scoped, limit)


def in_arrival_order(events: pa.Table) -> pa.Table:
    """The chain's events in the order the collector accepted them (request, then place
    in the batch), numbered in POSITION."""
    archive = events.column("_archive").combine_chunks()
    keys = pa.table({"line": archive.field("line"), "index": archive.field("index")})
    indices = pc.sort_indices(keys, sort_keys=[("line", "ascending"), ("index", "ascending")])
    ordered = events.select(list(TOP_LEVEL_COLUMNS)).take(indices)
    return ordered.append_column(POSITION, pa.array(range(ordered.num_rows), pa.int64()))


def match_events(
    con: duckdb.DuckDBPyConnection, events: pa.Table, watches: Iterable[Watch]
) -> dict[str, Matched]:
    """For each watch, the events (`in_arrival_order`) it matches: the JSON texts of the
    first `limit`, in order, and their count; watches matching nothing are left out."""
    con.register(TABLE, events)
    try:
        positions: dict[str, list[int]] = {}
        counts: dict[str, int] = {}
        for w in watches:
            source = table_source(TABLE, w.predicate)
            try:
                rows = con.execute(
                    f"SELECT {POSITION} FROM {source} WHERE {w.predicate.sql} ORDER BY {POSITION}",
                    w.predicate.params,
                ).fetchall()
            except duckdb.Error:  # one listener's failure does not stop the others
                log.exception("listener %s: its filter failed on %d events", w.id, len(events))
                continue
            if rows:
                positions[w.id] = [r[0] for r in rows[: w.limit]]
                counts[w.id] = len(rows)
    finally:
        con.unregister(TABLE)
    texts = _as_json(events, positions)
    return {listener: Matched(texts.get(listener, []), counts[listener]) for listener in positions}


def _as_json(events: pa.Table, positions: Mapping[str, list[int]]) -> dict[str, list[bytes]]:
    """Each matched row converted once, however many listeners matched it."""
    wanted = sorted({p for ps in positions.values() for p in ps})
    if not wanted:
        return {}
    rows = events.drop_columns([POSITION]).take(pa.array(wanted, pa.int64()))
    texts = dict(zip(wanted, (orjson.dumps(e) for e in events_from_table(rows)), strict=True))
    return {listener: [texts[p] for p in ps] for listener, ps in positions.items()}
