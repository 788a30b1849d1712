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
  Addresses are stored in canonical form (`ipaddress`).
- **connectionId**: the event's own, else the envelope's, else the batch's, else
  the job's `--connection-id`; with none of these the event is rejected.
- **messageId**: when missing or empty, a UUID-formatted MD5 of the connection id, the
  event's position in its batch, the batch's sentAt and the event's JSON text:
  re-importing the same file gives the same ids.
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

from eventpipe.schemas import EVENT_FIELDS, PARTITION_COLUMN, Field, arrow_schema
from eventpipe.transforms import failures as F
from eventpipe.transforms import json_leaves as J
from eventpipe.transforms.duck import quote_ident as qi
from eventpipe.transforms.ip_addresses import (
    MASK_LAST_OCTET,
    MASK_LAST_TWO_OCTETS,
    NO_IP,
    USE_REQUEST_IP,
    ip_table,
)

LAKE_SCHEMA = arrow_schema().append(pa.field(PARTITION_COLUMN, pa.string(), nullable=False))
"""The event table's rows as they leave the pipeline: the schema plus the partition key."""

_MIN_US, _MAX_US = (
    -62135596800000000,
    253402300799999999,
)  # 0001-01-01 .. 9999-12-31T23:59:59.999999


@dataclass(frozen=True)
class NormaliseResult:
    events: pa.Table  # LAKE_SCHEMA
    failed: pa.Table  # failures.FAILED_SCHEMA


def _uuid_from_md5(expr: str) -> str:
    h = f"md5({expr})"
    return (
        f"(substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-' || substr({h}, 13, 4) || '-' "
        f"|| substr({h}, 17, 4) || '-' || substr({h}, 21, 12))"
    )


def _struct_sql(fields: tuple[Field, ...], prefix: str, value_of) -> str:
    """SQL building a struct for `fields`; NULL when every leaf is NULL."""
    parts, leaves = [], []
    for f in fields:
        path = prefix + f.name
        if f.kind == "object":
            parts.append(f"{qs_key(f.name)}: {_struct_sql(f.children, path + '.', value_of)}")
        else:
            parts.append(f"{qs_key(f.name)}: {value_of(path)}")
        leaves.append(path)
    literal = "{" + ", ".join(parts) + "}"
    all_null = " AND ".join(f"({value_of(p)}) IS NULL" for p in _leaf_paths(fields, prefix))
    return f"(CASE WHEN {all_null} THEN NULL ELSE {literal} END)"


def _leaf_paths(fields: tuple[Field, ...], prefix: str) -> list[str]:
    out = []
    for f in fields:
        if f.kind == "object":
            out += _leaf_paths(f.children, prefix + f.name + ".")
        else:
            out.append(prefix + f.name)
    return out


def qs_key(name: str) -> str:
    """A struct key literal."""
    return "'" + name.replace("'", "''") + "'"


class EventNormaliser:
    """Turns validated events into event-table rows (SQL built once)."""

    def __init__(self) -> None:
        ctx_values = [leaf for leaf in J.context_leaves() if not leaf.is_section]
        batch_cols = [J.Leaf(leaf.path, leaf.field, "b:" + leaf.path) for leaf in ctx_values]
        batch_typed = ", ".join(f"{J.typed_expr(bl)} AS {bl.column}" for bl in batch_cols)
        self._batch = f"""
            SELECT batch_context, {batch_typed}
            FROM (SELECT batch_context, {J.leaf_columns("cl", [J.Leaf(b.path, b.field, b.column_name) for b in batch_cols])}
                  FROM (SELECT batch_context, {J.extract_list("batch_context", ctx_values, "context.")} AS cl
                        FROM (SELECT DISTINCT batch_context FROM valid WHERE batch_context IS NOT NULL)))
        """
        merged = ", ".join(
            f"coalesce(v.{qi(leaf.path)}, b.{qi('b:' + leaf.path)}) AS {qi('m:' + leaf.path)}"
            for leaf in ctx_values
        )
        self._merge = f"""
            SELECT v.*, {merged}
            FROM valid v LEFT JOIN batch b ON v.batch_context = b.batch_context
        """
        self._final = self._final_sql()

    @staticmethod
    def _final_sql() -> str:
        def value_of(path: str) -> str:
            if path == "context.ip":
                return "ip_final"
            if path == "context.session.id":
                return f"coalesce({qi('m:context.session.id')}, {qi('m:context.sessionId')})"
            if path == "context.session.start":
                return f"coalesce({qi('m:context.session.start')}, {qi('m:context.sessionStart')})"
            return qi("m:" + path)

        context = next(f for f in EVENT_FIELDS if f.name == "context")
        computed = {
            "kpid": "NULL::VARCHAR",
            "connectionId": "conn",
            "anonymousId": "anon",
            "context": _struct_sql(context.children, "context.", value_of),
            "messageId": "msg",
            "receivedAt": "received",
            "sentAt": "sent_final",
            "originalTimestamp": "original",
            "timestamp": "ts_final",
            "traits": "coalesce(traits, '{}')",
        }
        columns = ", ".join(
            f"{computed.get(f.name, qi(f.name))} AS {qi(f.name)}" for f in EVENT_FIELDS
        )
        msg_key = "concat_ws('|', conn, \"index\", epoch_us(batch_sent_at), payload)"
        anon_key = "concat_ws('|', 'anonymousId', conn, \"userId\")"
        msg_uuid, anon_uuid = _uuid_from_md5(msg_key), _uuid_from_md5(anon_key)
        return f"""
        WITH t AS (
          SELECT m.*, ipm.canonical AS ip_canonical, req.canonical AS req_ip,
                 req.masked_24 AS req_24, req.masked_16 AS req_16,
                 coalesce("connectionId", connection_id, $default_connection) AS conn,
                 coalesce("sentAt", batch_sent_at) AS sent,
                 coalesce(received_at, "receivedAt", coalesce("sentAt", batch_sent_at),
                          "timestamp", $run_start) AS received
          FROM merged m
          LEFT JOIN ips ipm ON ipm.ip = m.{qi("m:context.ip")}
          LEFT JOIN ips req ON req.ip = m.request_ip
        ), c AS (
          SELECT *, coalesce("timestamp", sent, received) AS client,
                 CASE WHEN sent IS NULL THEN epoch_us(coalesce("timestamp", received))
                      ELSE epoch_us(coalesce("timestamp", sent)) + epoch_us(received) - epoch_us(sent)
                 END AS corrected_us,
                 CASE {qi("m:context.ip")}
                   WHEN '{NO_IP}' THEN NULL
                   WHEN '{USE_REQUEST_IP}' THEN req_ip
                   WHEN '{MASK_LAST_OCTET}' THEN req_24
                   WHEN '{MASK_LAST_TWO_OCTETS}' THEN req_16
                   ELSE coalesce(ip_canonical, req_ip) END AS ip_final,
                 coalesce(nullif("messageId", ''), {msg_uuid}) AS msg,
                 coalesce("anonymousId", {anon_uuid}) AS anon
          FROM t
        ), f AS (
          SELECT *, coalesce("originalTimestamp", client) AS original,
                 coalesce(sent, received) AS sent_final,
                 CASE WHEN corrected_us BETWEEN {_MIN_US} AND {_MAX_US}
                      THEN make_timestamp(corrected_us)::TIMESTAMPTZ ELSE received END AS ts_final
          FROM c
        )
        SELECT {columns}, strftime(ts_final, '%Y-%m-%d') AS {qi(PARTITION_COLUMN)},
               conn IS NULL AS no_connection,
               source, line, "index", payload, received
        FROM f
        """

    def normalise(
        self,
        con: duckdb.DuckDBPyConnection,
        valid: pa.Table,
        run_id: str,
        run_start: datetime,
        default_connection: int | None,
    ) -> NormaliseResult:
        """Normalise one chunk of validated events in DuckDB session `con`."""
        con.register("valid", valid)
        batch = con.sql(self._batch).to_arrow_table()
        con.register("batch", batch)
        merged = con.sql(self._merge).to_arrow_table()
        con.unregister("valid")
        con.unregister("batch")
        ip_values = merged["m:context.ip"].to_pylist() + merged["request_ip"].to_pylist()
        con.register("merged", merged)
        con.register("ips", ip_table(ip_values))
        params = {
            "run_start": run_start,
            "default_connection": default_connection,
        }
        rows = con.sql(self._final, params=params).to_arrow_table()
        con.unregister("merged")
        con.unregister("ips")
        con.register("rows", rows)
        events = con.sql(
            'SELECT * EXCLUDE (no_connection, source, line, "index", payload, received) '
            "FROM rows WHERE NOT no_connection"
        ).to_arrow_table()
        failed = con.sql(
            """SELECT received AS "receivedAt", 'missing_property' AS reason,
                      'connectionId' AS field,
                      'the connection of the event is unknown: it has no connectionId, '
                      || 'nor has its envelope or batch; pass --connection-id' AS message,
                      source, line, "index", NULL::INTEGER AS "connectionId",
                      payload AS raw, $run_id AS "runId"
               FROM rows WHERE no_connection""",
            params={"run_id": run_id},
        ).to_arrow_table()
        con.unregister("rows")
        return NormaliseResult(events.cast(LAKE_SCHEMA), failed.cast(F.FAILED_SCHEMA))
