"""Parse: raw records -> one row per event, with the record's batch-level data.

A record is one line of a JSONL file or one whole JSON file. It may be a batch
document (`{"batch": [...], "context", "sentAt", "connectionId"}`), a JSON array
of events, or a single event object, each optionally wrapped in a landing
envelope (`{"receivedAt", "ip", "connectionId", "body": <one of those>}`).
A record that cannot be read as one of these is rejected whole.

Vectorised: a chunk of records is one Arrow table, processed by DuckDB SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.schemas import Field
from eventpipe.transforms import failures as F
from eventpipe.transforms import json_leaves as J
from eventpipe.transforms.ip_addresses import ip_table

RECORDS_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)
"""A chunk of raw records: the file, the 1-based line, the record text."""

PARSED_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("index", pa.int32(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("batch_context", pa.string()),
        pa.field("batch_sent_at", pa.timestamp("us", tz="UTC")),
        pa.field("received_at", pa.timestamp("us", tz="UTC")),
        pa.field("request_ip", pa.string()),
        pa.field("connection_id", pa.int32()),
    ]
)
"""One event of a record, as JSON text, with what its record says for all its events."""

_ENV_RECEIVED = J.Leaf("receivedAt", Field("receivedAt", "datetime", ""), "env.receivedAt")
_ENV_IP = J.Leaf("ip", Field("ip", "ip", ""), "env.ip")
_ENV_CONN = J.Leaf(
    "connectionId", Field("connectionId", "int", "", bit_size=32), "env.connectionId"
)
_BATCH_SENT = J.Leaf("sentAt", Field("sentAt", "datetime", ""), "batch.sentAt")
_BATCH_CONN = J.Leaf(
    "connectionId", Field("connectionId", "int", "", bit_size=32), "batch.connectionId"
)
_BATCH_CTX = J.Leaf("context", Field("context", "object", ""), "batch.context")


@dataclass(frozen=True)
class ParseResult:
    events: pa.Table  # PARSED_SCHEMA
    failed: pa.Table  # failures.FAILED_SCHEMA
    units_read: int  # events found + records rejected whole


def _structure_sql(ctx_leaves: list[J.Leaf]) -> str:
    """Records -> their envelope, body and batch parts, each as JSON text."""
    ctx_list = J.extract_list("d[2]", ctx_leaves, strip_prefix="context.")
    return f"""
    WITH r AS MATERIALIZED (
      SELECT source, line, raw, json_valid(raw) AS ok FROM records
    ), t AS MATERIALIZED (
      SELECT *, CASE WHEN ok THEN json_type(raw) END AS rt FROM r
    ), e AS MATERIALIZED (
      SELECT *, CASE WHEN rt = 'OBJECT'
                THEN json_extract(raw, ['$.body', '$.receivedAt', '$.ip', '$.connectionId']) END AS env
      FROM t
    ), b AS MATERIALIZED (
      SELECT source, line, raw, ok, rt, env[1] IS NOT NULL AS is_env, env,
             CASE WHEN env[1] IS NOT NULL THEN env[1] WHEN ok THEN raw::JSON END AS body
      FROM e
    ), bt AS MATERIALIZED (
      SELECT *, json_type(body) AS bt FROM b
    ), d AS MATERIALIZED (
      SELECT *, CASE WHEN bt = 'OBJECT'
                THEN json_extract(body, ['$.batch', '$.context', '$.sentAt', '$.connectionId']) END AS d
      FROM bt
    ), c AS MATERIALIZED (
      SELECT *, CASE WHEN json_type(d[2]) = 'OBJECT' THEN {ctx_list} END AS cl FROM d
    )
    SELECT source, line, raw, ok, rt, is_env, body, bt,
           nullif(env[2], 'null') AS {_ENV_RECEIVED.column},
           nullif(env[3], 'null') AS {_ENV_IP.column},
           nullif(env[4], 'null') AS {_ENV_CONN.column},
           bt = 'OBJECT' AND d[1] IS NOT NULL AS is_batch,
           d[1] AS batch,
           nullif(d[2], 'null') AS {_BATCH_CTX.column},
           nullif(d[3], 'null') AS {_BATCH_SENT.column},
           nullif(d[4], 'null') AS {_BATCH_CONN.column},
           {J.leaf_columns("cl", ctx_leaves)}
    FROM c
    """


def _string_value(leaf: J.Leaf) -> str:
    return f"CASE WHEN left({leaf.column}, 1) = '\"' THEN ({leaf.column})->>'$' END"


def _problem_sql(ctx_leaves: list[J.Leaf]) -> str:
    """Structured records -> their record-level problem (or NULL) and their event list."""
    ip_ok = {
        "ip": "env_ip_ok",
        "context.ip": "ctx_ip_ok",
    }
    cases: list[tuple[str, str, str | None, str]] = [
        ("NOT ok", F.INVALID_JSON, None, "the record is not valid JSON"),
        (
            "rt NOT IN ('OBJECT', 'ARRAY')",
            F.INVALID_RECORD,
            None,
            "the record must be a JSON object or an array of objects",
        ),
        (
            "is_env AND bt NOT IN ('OBJECT', 'ARRAY')",
            F.INVALID_ENVELOPE,
            "body",
            "envelope property 'body' must be a batch, an event object or an array of events",
        ),
    ]
    for leaf in (_ENV_RECEIVED, _ENV_IP, _ENV_CONN):
        for cond, reason, field, msg in J.presence_cases(
            [leaf], ip_ok, label="envelope property", reason=F.INVALID_ENVELOPE
        ):
            cases.append((f"is_env AND {cond}", reason, field, msg))
    cases.append(
        (
            "is_batch AND json_type(batch) <> 'ARRAY'",
            F.INVALID_BATCH,
            "batch",
            "property 'batch' must be an array of events",
        )
    )
    batch_leaves = [_BATCH_SENT, _BATCH_CONN, _BATCH_CTX, *ctx_leaves]
    for cond, reason, field, msg in J.presence_cases(
        batch_leaves, ip_ok, label="batch property", reason=F.INVALID_BATCH
    ):
        cases.append((f"is_batch AND {cond}", reason, field, msg))
    cases.append(("len(events) = 0", F.EMPTY_BATCH, None, "the batch or array holds no event"))
    problem = J.first_problem(cases)
    ts_env, ts_sent = J.ts_column(_ENV_RECEIVED), J.ts_column(_BATCH_SENT)
    return f"""
    WITH s AS MATERIALIZED (
      SELECT s.*, env_ip.canonical AS request_ip, env_ip.ok AS env_ip_ok, ctx_ip.ok AS ctx_ip_ok,
             {J.timestamp_expr(_ENV_RECEIVED.column)} AS {ts_env},
             {J.timestamp_expr(_BATCH_SENT.column)} AS {ts_sent},
             CASE WHEN is_batch AND json_type(batch) = 'ARRAY' THEN json_extract(batch, '$[*]')
                  WHEN NOT is_batch AND bt = 'ARRAY' THEN json_extract(body, '$[*]')
                  WHEN NOT is_batch AND bt = 'OBJECT' THEN [body] END AS events
      FROM structured s
      LEFT JOIN ips env_ip ON env_ip.ip = {_string_value(_ENV_IP)}
      LEFT JOIN ips ctx_ip ON ctx_ip.ip = {_string_value(J.Leaf("context.ip", Field("ip", "ip", "")))}
    )
    SELECT *, {problem} AS problem FROM s
    """


def _failed_sql(run_id_param: str) -> str:
    ts_env = J.ts_column(_ENV_RECEIVED)
    received = f"CASE WHEN {J.timestamp_in_range(ts_env)} THEN {ts_env} END"
    return f"""
    SELECT coalesce({received}, $run_start) AS "receivedAt",
           problem.reason AS reason, problem.field AS field, problem.message AS message,
           source, line, NULL::INTEGER AS "index",
           coalesce(TRY_CAST({_ENV_CONN.column} AS INTEGER), TRY_CAST({_BATCH_CONN.column} AS INTEGER))
             AS "connectionId",
           raw, {run_id_param} AS "runId"
    FROM checked WHERE problem IS NOT NULL
    """


_EVENTS_SQL = f"""
    SELECT source, line, (i - 1)::INTEGER AS "index", e::VARCHAR AS payload,
           {_BATCH_CTX.column}::VARCHAR AS batch_context,
           {J.ts_column(_BATCH_SENT)} AS batch_sent_at,
           {J.ts_column(_ENV_RECEIVED)} AS received_at,
           request_ip,
           coalesce(TRY_CAST({_ENV_CONN.column} AS INTEGER), TRY_CAST({_BATCH_CONN.column} AS INTEGER))
             AS connection_id
    FROM (SELECT *, unnest(events) AS e, generate_subscripts(events, 1) AS i
          FROM checked WHERE problem IS NULL)
"""


class RecordParser:
    """Turns chunks of raw records into event rows and failed records (SQL built once)."""

    def __init__(self) -> None:
        ctx_leaves = J.context_leaves()
        self._ip_leaves = [_ENV_IP, *(leaf for leaf in ctx_leaves if leaf.path == "context.ip")]
        self._structure = _structure_sql(ctx_leaves)
        self._problems = _problem_sql(ctx_leaves)
        self._failed = _failed_sql("$run_id")

    def parse(
        self, con: duckdb.DuckDBPyConnection, records: pa.Table, run_id: str, run_start: datetime
    ) -> ParseResult:
        """Parse one chunk of records (RECORDS_SCHEMA) in DuckDB session `con`."""
        con.register("records", records)
        structured = con.sql(self._structure).to_arrow_table()
        con.unregister("records")
        ip_values: list[str | None] = []
        for leaf in self._ip_leaves:
            texts = structured[leaf.column_name or leaf.path]
            ip_values += [t[1:-1] if t and t.startswith('"') else None for t in texts.to_pylist()]
        con.register("structured", structured)
        con.register("ips", ip_table(ip_values))
        checked = con.sql(self._problems).to_arrow_table()
        con.unregister("structured")
        con.register("checked", checked)
        params = {"run_id": run_id, "run_start": run_start}
        failed = con.sql(self._failed, params=params).to_arrow_table()
        events = con.sql(_EVENTS_SQL).to_arrow_table()
        con.unregister("checked")
        con.unregister("ips")
        failed = failed.cast(F.FAILED_SCHEMA)
        events = events.cast(PARSED_SCHEMA)
        return ParseResult(events, failed, events.num_rows + failed.num_rows)


def count_by_reason(failed: pa.Table) -> dict[str, int]:
    """{reason: number of failed rows} of a failed table."""
    if failed.num_rows == 0:
        return {}
    counts = pc.value_counts(failed["reason"]).to_pylist()
    return {c["values"]: c["counts"] for c in counts}
