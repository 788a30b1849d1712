"""Parse: raw records -> one row per event, with the record's batch-level data.

A record is one line of a JSONL file or one whole JSON file. It may be a batch
document (`{"batch": [...], "context", "sentAt", "connectionId"}`), a JSON array
of events, or a single event object, each optionally wrapped in a landing
envelope (`{"receivedAt", "ip", "connectionId", "body": <one of those>}`).
A record that is not one of these, or whose envelope or batch-level fields are
invalid, is rejected whole (one failed row).

Vectorised: a chunk of records is one Arrow table, processed by DuckDB SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.core.duck import ChunkQuery, quote_str, strictly
from eventpipe.core.json_audit import duplicate_keys
from eventpipe.schemas import Field
from eventpipe.schemas.failures import (
    EMPTY_BATCH,
    INVALID_BATCH,
    INVALID_ENVELOPE,
    INVALID_JSON,
    INVALID_RECORD,
    TOO_LARGE,
    empty_failed,
    failed_rows,
    rejected_records,
)
from eventpipe.schemas.records import PARSED_SCHEMA, RECORDS_SCHEMA
from eventpipe.transforms.json_leaves import (
    Leaf,
    ProblemCase,
    RankedChecks,
    check_order,
    context_leaves,
    first_problem,
    object_keys,
    problem_cases,
    struct_access,
    transform_structure,
    types_list,
    valid_timestamp,
)

_ENVELOPE = [
    Leaf("receivedAt", Field("receivedAt", "datetime", "")),
    Leaf("ip", Field("ip", "ip", "")),
    Leaf("connectionId", Field("connectionId", "int", "", bit_size=32)),
]
# In the order their problems are reported (`json_leaves.check_order`).
_BATCH = check_order(
    [
        Leaf("sentAt", Field("sentAt", "datetime", "")),
        Leaf("connectionId", Field("connectionId", "int", "", bit_size=32)),
        Leaf("context", Field("context", "object", "")),
        *context_leaves(),
    ]
)

# The same without the leaves inside `context`: every check of those is guarded by the batch
# context being present, so a chunk where no record has one is checked by the smaller query
# (DuckDB initialises every expression of a plan at each run: ~2 ms less per chunk).
_BATCH_WITHOUT_CONTEXT = [leaf for leaf in _BATCH if not leaf.path.startswith("context.")]


# Objects of a record whose keys are checked for duplicates (events: see validate).
_KEYED_OBJECTS = ["", "body"]


@dataclass(frozen=True)
class ParseResult:
    events: pa.Table  # PARSED_SCHEMA
    failed: pa.Table  # failures.FAILED_SCHEMA
    units_read: int  # events found + records rejected whole


def _indexed(leaves: list[Leaf], types: str):
    position = {leaf.path: i for i, leaf in enumerate(leaves, 1)}
    return lambda leaf: f"{types}[{position[leaf.path]}]"


def _checked_sql(source: str, batch: list[Leaf] = _BATCH) -> str:
    """SQL: each classified record's events, its first problem, and its batch-level parts.

    A record is parsed by as few calls as its form needs: its keys (`json_keys`), the JSON
    types of its envelope and batch properties (one `json_type`), their values and the
    batch's events as JSON texts (one `json_transform`), and for a batch with a `context`
    that context's text; an array of events or an envelope's single event is extracted.
    """
    env_paths = [leaf.path for leaf in _ENVELOPE]
    batch_paths = [leaf.path for leaf in batch]
    # The batch's values, and its events as JSON texts, in one spec (an envelope's under
    # `body`, beside the envelope's own properties).
    batch_spec = {**transform_structure(batch), "batch": ["JSON"]}
    env_spec = {**transform_structure(_ENVELOPE), "body": batch_spec}
    cases: list[ProblemCase] = [
        ("NOT ok", INVALID_JSON, None, "the record is not valid JSON"),
        (
            "record_type NOT IN ('OBJECT', 'ARRAY')",
            INVALID_RECORD,
            None,
            "the record must be a JSON object or an array of events",
        ),
        (
            "is_env AND body_type NOT IN ('OBJECT', 'ARRAY')",
            INVALID_ENVELOPE,
            "body",
            "envelope property 'body' must be a batch, an event object or an array of events",
        ),
    ]
    env_type, env_value = (
        _indexed(_ENVELOPE, "envelope_types"),
        (lambda leaf: struct_access("envelope_values", leaf.path)),
    )
    env_cases = problem_cases(_ENVELOPE, env_type, env_value, "envelope property", INVALID_ENVELOPE)
    batch_cases: list[ProblemCase] = [
        (
            "batch_type <> 'ARRAY'",
            INVALID_BATCH,
            "batch",
            "property 'batch' must be an array of events",
        )
    ]
    batch_type, batch_value = (
        _indexed(batch, "batch_types"),
        (lambda leaf: struct_access("batch_values", leaf.path)),
    )
    batch_checks = RankedChecks()
    batch_checks.add_leaves(
        batch, "batch_types", batch_type, batch_value, "batch property", INVALID_BATCH
    )
    empty = [("len(events) = 0", EMPTY_BATCH, None, "the batch or array holds no event")]
    # The first problem of the record, else of its envelope, else of its batch, else emptiness.
    problem = (
        f"coalesce({first_problem(cases)}, "
        f"CASE WHEN is_env THEN {first_problem(env_cases)} END, "
        f"CASE WHEN is_batch THEN coalesce({first_problem(batch_cases)}, {batch_checks.first_problem()}) END, "
        f"{first_problem(empty)})"
    )
    events_of_batch = "list_transform(batch_values.batch::VARCHAR[], lambda e: coalesce(e, 'null'))"
    return f"""
    WITH classified AS (
      SELECT source, line, first_index, raw, ok, record_type, is_env, body_type, batch_type,
             body_type = 'OBJECT' AND batch_type IS NOT NULL AS is_batch
      FROM (SELECT *, k[1] AS record_type, coalesce(k[1] = 'OBJECT' AND k[2] IS NOT NULL, false) AS is_env,
                   CASE WHEN k[1] = 'OBJECT' AND k[2] IS NOT NULL THEN k[2] ELSE k[1] END AS body_type,
                   CASE WHEN k[1] = 'OBJECT' AND k[2] IS NOT NULL THEN k[4] ELSE k[3] END AS batch_type
            FROM {source})
    ), parts AS (
      SELECT *,
        CASE WHEN ok THEN {object_keys("raw", _KEYED_OBJECTS)} END AS keys,
        CASE WHEN is_env THEN {types_list("raw", env_paths + ["body." + p for p in batch_paths])}
             WHEN is_batch THEN {types_list("raw", batch_paths)} END AS types,
        CASE WHEN is_env THEN json_transform(raw, {quote_str(json.dumps(env_spec))}) END AS envelope_values,
        CASE WHEN is_batch AND NOT is_env THEN json_transform(raw, {quote_str(json.dumps(batch_spec))}) END
          AS batch_only_values
      FROM classified
    ), extracted AS (
      SELECT *,
        CASE WHEN is_env THEN types[:{len(env_paths)}] END AS envelope_types,
        CASE WHEN is_batch AND is_env THEN types[{len(env_paths) + 1}:] WHEN is_batch THEN types END AS batch_types,
        CASE WHEN is_batch AND is_env THEN envelope_values.body WHEN is_batch THEN batch_only_values END
          AS batch_values
      FROM parts
    ), exploded AS (
      SELECT *,
        CASE WHEN is_batch AND batch_type = 'ARRAY' THEN {events_of_batch}
             WHEN NOT is_batch AND body_type = 'ARRAY' AND is_env THEN json_extract(raw, '$.body[*]')::VARCHAR[]
             WHEN NOT is_batch AND body_type = 'ARRAY' THEN json_extract(raw, '$[*]')::VARCHAR[]
             WHEN NOT is_batch AND body_type = 'OBJECT' AND is_env THEN [json_extract(raw, '$.body')::VARCHAR]
             END AS events
      FROM extracted
    )
    SELECT source, line, first_index, raw, events, {problem} AS problem, keys,
           CASE WHEN is_batch AND is_env AND batch_types[3] = 'OBJECT' THEN json_extract(raw, '$.body.context')::VARCHAR
                WHEN is_batch AND batch_types[3] = 'OBJECT' THEN json_extract(raw, '$.context')::VARCHAR END
             AS batch_context,
           CASE WHEN is_batch THEN {valid_timestamp("batch_values.sentAt")} END AS batch_sent_at,
           CASE WHEN is_env THEN {valid_timestamp("envelope_values.receivedAt")} END AS received_at,
           CASE WHEN is_env AND envelope_values.ip IS NOT NULL THEN ip_canonical(envelope_values.ip) END AS request_ip,
           coalesce(TRY_CAST(envelope_values.connectionId AS INTEGER), TRY_CAST(batch_values.connectionId AS INTEGER))
             AS connection_id
    FROM exploded
    """


def _explode(ok: pa.Table) -> pa.Table:
    """One row per element of each record's `events` list, with the record's columns."""
    lists = ok["events"].combine_chunks()
    parents = pc.list_parent_indices(lists)
    starts = pc.take(lists.offsets, parents)
    local = pc.subtract(
        pa.array(np.arange(len(parents), dtype=np.int32)), pc.cast(starts, pa.int32())
    )
    index = pc.add(local, pc.take(ok["first_index"], parents))
    meta = ok.select([c for c in PARSED_SCHEMA.names if c in ok.column_names]).take(parents)
    events = meta.add_column(2, "index", index).add_column(3, "payload", pc.list_flatten(lists))
    return events.select(PARSED_SCHEMA.names).cast(PARSED_SCHEMA)


CLASSIFIED_SCHEMA = RECORDS_SCHEMA.append(pa.field("ok", pa.bool_(), nullable=False)).append(
    pa.field("k", pa.list_(pa.string()))
)
"""Records with what `_CLASSIFY_SQL` found: strict JSON or not, and the JSON types of
the record itself, its `body`, `batch`, `body.batch`, `context` and `body.context` (NULL
where absent)."""

# Each record is parsed for its shape once (text DuckDB cannot read gives no types, `try`).
# Plain events, strict JSON objects with neither `body` nor `batch` (one event per line,
# as exports and NDJSON files hold), need no record-level work: their text is the payload.
_CLASSIFY_SQL = f"""
    SELECT line, first_index, ok, CASE WHEN ok THEN k END AS k,
           coalesce(ok AND k[1] = 'OBJECT' AND k[2] IS NULL AND k[3] IS NULL, false) AS plain
    FROM (SELECT line, first_index, k, {strictly("raw", "k IS NOT NULL", numbers=False)} AS ok
          FROM (SELECT line, first_index, raw, try(json_type(raw, ['$', '$.body', '$.batch', '$.body.batch', '$.context', '$.body.context'])) AS k
                FROM classify_input))
"""


def _plain_events(records: pa.Table) -> pa.Table:
    """Event rows for plain-event records: the record text is the payload."""
    n = records.num_rows
    columns = {
        "source": records["source"],
        "line": records["line"],
        "index": records["first_index"],
        "payload": records["raw"],
    }
    arrays = [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in PARSED_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=PARSED_SCHEMA)


class RecordParser:
    """Turns chunks of raw records into event rows and failed records.

    `bind(con)` plans the SQL once in a DuckDB session; `parse` runs it per chunk.
    Plain-event records (most lines of exports and NDJSON files) take a short cut;
    envelopes, batches, arrays and anything invalid take the full record query.
    """

    def __init__(self, run_id: str, run_start: datetime) -> None:
        self.run_id = run_id
        self.run_start = run_start
        self.classify = ChunkQuery("classify_input", RECORDS_SCHEMA, _CLASSIFY_SQL)
        self.query = ChunkQuery("parse_input", CLASSIFIED_SCHEMA, _checked_sql("parse_input"))
        self.query_without_context = ChunkQuery(
            "parse_nc_input",
            CLASSIFIED_SCHEMA,
            _checked_sql("parse_nc_input", _BATCH_WITHOUT_CONTEXT),
        )
        self.con: duckdb.DuckDBPyConnection | None = None

    def bind(self, con: duckdb.DuckDBPyConnection) -> RecordParser:
        """Prepare the queries in `con` (once per session)."""
        self.classify.prepare(con)
        self.query.prepare(con)
        self.query_without_context.prepare(con)
        self.con = con
        return self

    def parse(self, records: pa.Table) -> ParseResult:
        """Parse one chunk of records (RECORDS_SCHEMA).

        A chunk DuckDB has not the memory for is parsed in halves; a single record it
        has not the memory for is rejected (`too_large`), so the session stays usable.
        """
        assert self.con is not None, "bind() the parser to a DuckDB session first"
        try:
            return self._parse(records)
        except duckdb.OutOfMemoryException as exc:
            if records.num_rows > 1:
                half = records.num_rows // 2
                parts = [self.parse(records.slice(0, half)), self.parse(records.slice(half))]
                return ParseResult(
                    pa.concat_tables([p.events for p in parts]),
                    pa.concat_tables([p.failed for p in parts]),
                    sum(p.units_read for p in parts),
                )
            return ParseResult(PARSED_SCHEMA.empty_table(), self._too_large(records, exc), 1)

    def _too_large(self, record: pa.Table, exc: Exception) -> pa.Table:
        [(limit,)] = self.con.sql("SELECT current_setting('memory_limit')").fetchall()
        first = record["first_index"][0].as_py()
        message = (
            f"parsing the record ({len(record['raw'][0].as_py().encode()):,} bytes"
            f"{f', events from position {first:,} of its document' if first else ''}) needs "
            f"more than the stage's memory limit ({limit}): {str(exc).splitlines()[0]}"
        )
        return rejected_records(
            record["source"][0].as_py(),
            [record["line"][0].as_py()],
            TOO_LARGE,
            [message],
            [record["raw"][0].as_py()],
            self.run_id,
            self.run_start,
        )

    def _query_for(self, classified: pa.Table) -> ChunkQuery:
        """The record query, without the batch context's leaf checks when no record of
        the chunk has a `context` (at its top or in its body) for them to check."""
        kinds = classified["k"]
        for at in (4, 5):  # `context`, `body.context`
            if pc.any(pc.is_valid(pc.list_element(kinds, at))).as_py():
                return self.query
        return self.query_without_context

    def _parse(self, records: pa.Table) -> ParseResult:
        # ok, k, plain (no copy of the text), row for row with the records
        shape = self.classify.run(self.con, records, in_order_of=("line", "first_index"))
        plain = shape["plain"]
        if pc.all(plain).as_py():  # one event per line: the records are the events
            return ParseResult(_plain_events(records), empty_failed(), records.num_rows)
        events = [_plain_events(records.filter(plain))]
        classified = records.append_column("ok", shape["ok"]).append_column("k", shape["k"])
        others = classified.filter(pc.invert(plain)).cast(CLASSIFIED_SCHEMA)
        failed = empty_failed()
        if others.num_rows:
            checked = self._query_for(others).run(self.con, others)
            twice = duplicate_keys(checked["keys"], _KEYED_OBJECTS, "the record")
            if twice is not None:  # a key twice comes first: which value counts is unknown
                at = checked.schema.get_field_index("problem")
                checked = checked.set_column(at, "problem", pc.coalesce(twice, checked["problem"]))
            failed = failed_rows(checked, "raw", self.run_id, self.run_start, record_level=True)
            events.append(_explode(checked.filter(pc.is_null(checked["problem"]))))
        table = pa.concat_tables(events)
        return ParseResult(table, failed, table.num_rows + failed.num_rows)
