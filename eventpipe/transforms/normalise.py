"""Normalise: valid typed events -> rows of the event table.

The rules, in the order they apply:

- **Batch context**: the batch `context` is merged under the event's context leaf
  by leaf (deep merge): a leaf the event carries wins, one it lacks comes from the batch.
- **Aliases**: `context.sessionId` / `context.sessionStart` fill `context.session.id`
  / `.start` when those are absent.
- **IP** (seed 000's special values): `0.0.0.0` removes the IP; `255.255.255.255`
  takes the request IP of the landing envelope; `255.255.255.0` / `255.255.0.0` take
  it masked (IPv4: last one / two octets zeroed; IPv6: last 80 / 96 bits zeroed);
  without a request IP these leave no IP. An event with no IP takes the request IP.
  Addresses are stored in canonical form, an IPv4-mapped IPv6 address as its IPv4
  address (`::ffff:0.0.0.0` is `0.0.0.0`; see `schemas.ip_addresses`).
- **connectionId**: the event's own, else the envelope's, else the batch's, else
  the job's `--connection-id`; with none of these the event is rejected.
- **messageId**: when missing or empty, a UUID-formatted MD5 of the connection id, the
  event's position in its batch, the batch's sentAt, the event's JSON text and the
  record's receive time (a landing envelope's `receivedAt`, a Pub/Sub message's): the
  same event sent in two requests gets two ids, re-importing the same file (or a
  redelivered message) the same ids.
- **anonymousId**: when only userId is given, a UUID-formatted MD5 of the connection
  id and the userId (the same user always gets the same anonymousId).
- **Clock drift**: `receivedAt` is the envelope's, else the event's own (exports
  carry it), else the effective `sentAt` (event's, else the batch's), else the event's
  `timestamp`, else the run's start. The client's time is the event's `timestamp`
  (else `sentAt`, else `receivedAt`). When `sentAt` is known, the stored
  `timestamp` = client time + (receivedAt - sentAt); without it, the client time.
  A result outside years 1..9999 falls back to `receivedAt`. `originalTimestamp` is
  the event's own when given, else the client time; `sentAt` defaults to `receivedAt`.
- **traits** is `{}` when absent; empty context sections are null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.core.duck import ChunkQuery, conform
from eventpipe.core.duck import quote_ident as qi
from eventpipe.core.duck import quote_str as qs
from eventpipe.schemas import EVENT_FIELDS, arrow_schema
from eventpipe.schemas.failures import MISSING_PROPERTY, PROBLEM_TYPE, empty_failed, failed_rows
from eventpipe.schemas.ip_addresses import (
    MASK_LAST_OCTET,
    MASK_LAST_TWO_OCTETS,
    NO_IP,
    USE_REQUEST_IP,
)
from eventpipe.schemas.records import ARCHIVE_COLUMN, PARSED_SCHEMA
from eventpipe.transforms.context_merge import merge_context
from eventpipe.transforms.json_leaves import (
    context_leaves,
    event_leaves,
    struct_access,
    transform_spec,
)

LAKE_SCHEMA = arrow_schema()
"""The event table's rows, exactly as the lake stores them."""
CONTEXT_TYPE = LAKE_SCHEMA.field("context").type

_MIN_US, _MAX_US = (
    -62135596800000000,
    253402300799999999,
)  # 0001-01-01 .. 9999-12-31T23:59:59.999999


BATCH_CONTEXT = pa.dictionary(pa.int32(), pa.string())
ARCHIVE_FIELDS = [
    f.with_type(BATCH_CONTEXT) if f.name == "batch_context" else f for f in PARSED_SCHEMA
]
"""PARSED_SCHEMA, but each batch's context text is held once (dictionary-encoded)."""


def archive_rows(parsed: pa.Table, rows: pa.Table, batch_texts: pa.Array) -> pa.StructArray:
    """The archived form of normalised rows: the parsed event with its EFFECTIVE
    receivedAt and connectionId, so normalising it again gives the same row even
    where the first run fell back to its own start time or its `--connection-id`.

    `parsed` are the events as normalise got them, `rows` what it made of them (same
    order); `batch_texts` are the chunk's batch contexts, indexed by `batch_row`.
    """
    columns = {
        **{name: parsed[name] for name in PARSED_SCHEMA.names},
        "received_at": rows["received_at"],
        "connection_id": rows["effective_connection"],
        "batch_context": pa.DictionaryArray.from_arrays(
            pc.cast(rows["batch_row"], pa.int32()).combine_chunks(), batch_texts
        ),
    }
    arrays = [_one_chunk(pc.cast(columns[f.name], f.type)) for f in ARCHIVE_FIELDS]
    return pa.StructArray.from_arrays(arrays, fields=ARCHIVE_FIELDS)


def _one_chunk(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.Array):
        return values
    return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()


@dataclass(frozen=True)
class NormaliseResult:
    events: pa.Table  # LAKE_SCHEMA plus ARCHIVE_COLUMN
    failed: pa.Table  # failures.FAILED_SCHEMA


def _uuid_from_md5(expr: str) -> str:
    """SQL: the MD5 of `expr`, formatted as a UUID (8-4-4-4-12 hex digits)."""
    return f"regexp_replace(md5({expr}), '^(.{{8}})(.{{4}})(.{{4}})(.{{4}})(.{{12}})$', '\\1-\\2-\\3-\\4-\\5')"


BATCHES_SCHEMA = pa.schema([pa.field("batch_context", pa.string(), nullable=False)])


def batches_sql() -> str:
    """SQL: the batch contexts of `normalise_batches` (BATCHES_SCHEMA), typed, in order."""
    ctx_spec = transform_spec(context_leaves(), strip_prefix="context.", lake_types=True)
    return f"SELECT json_transform(batch_context, {ctx_spec}) AS bc FROM normalise_batches"


NORMALISE_INPUT = PARSED_SCHEMA.append(pa.field("batch_row", pa.int32())).append(
    pa.field("batch_ip", pa.string())
)
"""What `normalise_sql` reads: parsed events, the number of their batch's context among
the chunk's distinct ones, and the IP that context gives."""


def normalise_sql(run_start: datetime, default_connection: int | None) -> str:
    """SQL: rows of `normalise_input` (NORMALISE_INPUT) -> event-table rows plus bookkeeping
    columns, one per input row and in input order (the parsed columns are not copied out)."""
    leaves = event_leaves()
    spec = transform_spec(leaves, lake_types=True)
    computed = {
        "kpid": "NULL::VARCHAR",
        "connectionId": "conn",
        "anonymousId": "anon",
        "context": "v.context",
        "messageId": "msg",
        "receivedAt": "received",
        "sentAt": "coalesce(sent, received)",
        "originalTimestamp": "coalesce(original, client)",
        "timestamp": "ts_final",
        "traits": "coalesce(v.traits::VARCHAR, '{}')",
        "properties": "v.properties::VARCHAR",
    }
    columns = ",\n          ".join(
        f"{computed.get(f.name, struct_access('v', f.name))} AS {qi(f.name)}" for f in EVENT_FIELDS
    )
    # The receive time of the record (a landing envelope's or a Pub/Sub message's) goes in
    # only when the event's own times do not give it: an archived row (reprocess) carries
    # the effective receivedAt, which then equals what the event says, and a record with
    # no receive time keeps the id it always had.
    record_time = (
        "CASE WHEN received_at IS DISTINCT FROM coalesce(event_received, sent, event_ts) "
        "THEN epoch_us(received_at) END"
    )
    msg_key = f"concat_ws('|', conn, \"index\", epoch_us(batch_sent_at), payload, {record_time})"
    anon_key = "concat_ws('|', 'anonymousId', conn, v.\"userId\")"
    connection = "NULL::INTEGER" if default_connection is None else str(int(default_connection))
    start = f"TIMESTAMPTZ {qs(run_start.isoformat())}"
    return f"""
        WITH e AS (SELECT *, json_transform(payload, {spec}) AS v FROM normalise_input),
        m AS (
          SELECT e.*, ip_canonical(coalesce(v.context.ip, batch_ip)) AS merged_ip,
                 coalesce(v."connectionId", connection_id, {connection}) AS conn,
                 coalesce(v."sentAt", batch_sent_at) AS sent,
                 v."timestamp" AS event_ts,
                 v."originalTimestamp" AS original,
                 v."receivedAt" AS event_received
          FROM e),
        t AS (
          SELECT *, coalesce(received_at, event_received, sent, event_ts, {start}) AS received
          FROM m),
        c AS (
          SELECT *, coalesce(event_ts, sent, received) AS client,
                 CASE WHEN sent IS NULL THEN epoch_us(coalesce(event_ts, received))
                      ELSE epoch_us(coalesce(event_ts, sent)) + epoch_us(received) - epoch_us(sent)
                 END AS corrected_us,
                 CASE merged_ip
                   WHEN '{NO_IP}' THEN NULL
                   WHEN '{USE_REQUEST_IP}' THEN request_ip
                   WHEN '{MASK_LAST_OCTET}' THEN ip_masked_24(request_ip)
                   WHEN '{MASK_LAST_TWO_OCTETS}' THEN ip_masked_16(request_ip)
                   ELSE coalesce(merged_ip, request_ip) END AS ip_final,
                 coalesce(nullif(v."messageId", ''), {_uuid_from_md5(msg_key)}) AS msg,
                 coalesce(v."anonymousId", {_uuid_from_md5(anon_key)}) AS anon
          FROM t),
        f AS (
          SELECT *, CASE WHEN corrected_us BETWEEN {_MIN_US} AND {_MAX_US}
                         THEN make_timestamp(corrected_us)::TIMESTAMPTZ ELSE received END AS ts_final
          FROM c)
        SELECT {columns},
          batch_row, ip_final,
          conn IS NULL AS no_connection, line, "index",
          received AS received_at, conn AS effective_connection
        FROM f
    """


_NO_CONNECTION = {
    "reason": MISSING_PROPERTY,
    "field": "connectionId",
    "message": "the connection of the event is unknown: neither the event, its envelope nor "
    "its batch has a connectionId; pass --connection-id",
}


class EventNormaliser:
    """Turns validated events into event-table rows.

    `bind(con)` plans the SQL once in a DuckDB session; `normalise` runs it per chunk.
    """

    def __init__(self, run_id: str, run_start: datetime, default_connection: int | None) -> None:
        self.run_id = run_id
        self.run_start = run_start
        self.query = ChunkQuery(
            "normalise_input", NORMALISE_INPUT, normalise_sql(run_start, default_connection)
        )
        self.batches = ChunkQuery("normalise_batches", BATCHES_SCHEMA, batches_sql())
        self.con: duckdb.DuckDBPyConnection | None = None

    def bind(self, con: duckdb.DuckDBPyConnection) -> EventNormaliser:
        """Prepare the queries in `con` (once per session)."""
        self.query.prepare(con)
        self.batches.prepare(con)
        self.con = con
        return self

    def normalise(self, valid: pa.Table) -> NormaliseResult:
        """Normalise one chunk of validated events (PARSED_SCHEMA)."""
        assert self.con is not None, "bind() the normaliser to a DuckDB session first"
        con = self.con
        valid = conform(valid, PARSED_SCHEMA)
        # Each distinct batch context is converted once; the rows carry its number.
        texts = pc.drop_null(pc.unique(valid["batch_context"]))
        batch_row = pc.cast(pc.index_in(valid["batch_context"], texts), pa.int32())
        batch_context, batch_ip = None, pa.nulls(valid.num_rows, pa.string())
        if len(texts):
            batches = self.batches.run(con, pa.table({"batch_context": texts}, BATCHES_SCHEMA))
            batch_context = pc.take(batches["bc"], batch_row)
            batch_ip = pc.struct_field(batch_context, "ip")
        rows = self.query.run(
            con,
            valid.append_column("batch_row", batch_row).append_column("batch_ip", batch_ip),
            in_order_of=("line", "index"),
        )
        context = merge_context(
            rows["context"], batch_context, CONTEXT_TYPE, {("ip",): rows["ip_final"]}
        )
        rows = rows.set_column(rows.schema.get_field_index("context"), "context", context)
        missing = rows["no_connection"]
        if not pc.any(missing).as_py():
            return NormaliseResult(_events(valid, rows, texts), empty_failed())
        kept = pc.invert(missing)
        events = _events(valid.filter(kept), rows.filter(kept), texts)
        lost = valid.filter(missing).drop_columns(["received_at"])
        problem = pa.array([_NO_CONNECTION] * lost.num_rows, PROBLEM_TYPE)
        lost = lost.append_column("problem", problem).append_column(
            "received_at", rows["received_at"].filter(missing)
        )
        failed = failed_rows(lost, "payload", self.run_id, self.run_start)
        return NormaliseResult(events, failed)


def _events(parsed: pa.Table, rows: pa.Table, batch_texts: pa.Array) -> pa.Table:
    """Event-table rows plus their archive column."""
    events = rows.select(LAKE_SCHEMA.names).cast(LAKE_SCHEMA)
    return events.append_column(ARCHIVE_COLUMN, archive_rows(parsed, rows, batch_texts))
