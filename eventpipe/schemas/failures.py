"""Failed records: the stable reason codes and the failed table's schema.

Every record or event the pipeline cannot accept becomes one failed row, with
a reason code from `REASONS`, the field it concerns and a message naming it.
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

# Record-level reasons: the whole raw record is rejected (one failed row).
INVALID_JSON = "invalid_json"
INVALID_RECORD = "invalid_record"
INVALID_ENVELOPE = "invalid_envelope"
INVALID_BATCH = "invalid_batch"
EMPTY_BATCH = "empty_batch"
TOO_LARGE = "too_large"
# File-level: a file that cannot be read to its end (unreadable, not gzip, truncated, corrupt).
INVALID_FILE = "invalid_file"
# Event-level reasons: one event of a record is rejected.
INVALID_EVENT = "invalid_event"
MISSING_PROPERTY = "missing_property"
PROPERTY_NOT_PERMITTED = "property_not_permitted"
INVALID_TYPE = "invalid_type"
INVALID_VALUE = "invalid_value"
# Policy: a valid event the operator chose not to keep (import --drop-bots).
BOT = "bot"
# Streaming: a valid event older than the opt-in `stream --max-event-age`.
TOO_OLD = "too_old"

REASONS: dict[str, str] = {
    INVALID_JSON: "the record is not valid JSON (or not valid UTF-8)",
    INVALID_RECORD: "the record is JSON but neither an object nor an array",
    INVALID_ENVELOPE: "a field of the landing envelope (body, receivedAt, ip, connectionId) is invalid",
    INVALID_BATCH: "a batch-level field (batch, sentAt, context, connectionId) is invalid",
    EMPTY_BATCH: "the batch or array holds no event",
    TOO_LARGE: "the record (a line, a .json file or one of its events) is over the size limit",
    INVALID_FILE: "the file cannot be read to its end: unreadable, not gzip, truncated or corrupt",
    INVALID_EVENT: "an element of the batch is not a JSON object",
    MISSING_PROPERTY: "a property the event type requires is missing",
    PROPERTY_NOT_PERMITTED: "a property is present that the event type does not permit",
    INVALID_TYPE: "a property has the wrong JSON type",
    INVALID_VALUE: "a property has the right type but an invalid value",
    BOT: "a valid event from a bot or crawler, dropped because of --drop-bots",
    TOO_OLD: "a valid streamed event older than the maximum event age (stream --max-event-age)",
}

FAILED_SCHEMA = pa.schema(
    [
        pa.field("receivedAt", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("field", pa.string()),
        pa.field("message", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("index", pa.int32()),
        pa.field("connectionId", pa.int32()),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("runId", pa.string(), nullable=False),
    ]
)
"""One rejected record or event. `line` is the 1-based line of the record in its
source file (1 for a whole-file JSON document); `index` is the 0-based position
of the event in its batch or array (null when the whole record was rejected);
`raw` is the payload text (the record, or the event). Partitioned by the UTC
date of `receivedAt`."""


PROBLEM_TYPE = pa.struct(
    [("reason", pa.string()), ("field", pa.string()), ("message", pa.string())]
)
"""What a check found wrong: a reason code, the field (dotted path) and a message."""


def empty_failed() -> pa.Table:
    """A failed table with no rows."""
    return FAILED_SCHEMA.empty_table()


def failed_rows(
    checked: pa.Table,
    raw_column: str,
    run_id: str,
    run_start: object,
    record_level: bool = False,
    received_column: str = "received_at",
) -> pa.Table:
    """The failed table of the rows of `checked` whose `problem` struct is not null.

    `checked` has columns problem {reason, field, message}, received_at, source,
    line, index (unless `record_level`), connection_id and `raw_column`.
    Rows with no received_at take `run_start`.
    """
    rows = checked.filter(pc.is_valid(checked["problem"]))
    n = rows.num_rows
    problem = rows["problem"]
    received = pc.fill_null(
        rows[received_column], pa.scalar(run_start, FAILED_SCHEMA.field("receivedAt").type)
    )
    index = pa.nulls(n, pa.int32()) if record_level else rows["index"]
    columns = [
        received,
        pc.struct_field(problem, "reason"),
        pc.struct_field(problem, "field"),
        pc.struct_field(problem, "message"),
        rows["source"],
        rows["line"],
        index,
        rows["connection_id"],
        rows[raw_column],
        pa.array([run_id] * n, pa.string()),
    ]
    return pa.Table.from_arrays(columns, schema=FAILED_SCHEMA)


def rejected_records(
    source: str,
    lines: list[int],
    reason: str,
    messages: list[str],
    raws: list[str],
    run_id: str,
    run_start: object,
    indexes: list[int | None] | None = None,
) -> pa.Table:
    """Failed rows for records of `source` rejected before parsing (by the file reader)."""
    n = len(lines)
    problems = pa.StructArray.from_arrays(
        [
            pa.array([reason] * n, pa.string()),
            pa.nulls(n, pa.string()),
            pa.array(messages, pa.string()),
        ],
        fields=list(PROBLEM_TYPE),
    )
    rows = pa.table(
        {
            "problem": problems,
            "received_at": pa.nulls(n, FAILED_SCHEMA.field("receivedAt").type),
            "source": pa.array([source] * n, pa.string()),
            "line": pa.array(lines, pa.int64()),
            "index": pa.array(indexes or [None] * n, pa.int32()),
            "connection_id": pa.nulls(n, pa.int32()),
            "raw": pa.array(raws, pa.string()),
        }
    )
    return failed_rows(rows, "raw", run_id, run_start)


def dropped_bots(events: pa.Table, run_id: str) -> pa.Table:
    """Failed rows (reason `bot`) for events dropped as bots; `raw` is the row as JSON."""
    n = events.num_rows
    agents = pc.struct_field(events["context"], ["userAgent"]).to_pylist()
    problems = [
        {
            "reason": BOT,
            "field": "context.userAgent",
            "message": f"dropped by --drop-bots: the user agent {ua!r} is a bot's",
        }
        for ua in agents
    ]
    rows = pa.table(
        {
            "problem": pa.array(problems, PROBLEM_TYPE),
            "received_at": events["receivedAt"],
            "source": pa.array(["(enrichment)"] * n, pa.string()),
            "line": pa.array([0] * n, pa.int64()),
            "connection_id": events["connectionId"],
            "raw": pa.array(
                [orjson.dumps(r, default=str).decode() for r in events.to_pylist()], pa.string()
            ),
        }
    )
    return failed_rows(rows, "raw", run_id, None, record_level=True)


def count_by_reason(failed: pa.Table) -> dict[str, int]:
    """{reason: number of failed rows} of a failed table."""
    if failed.num_rows == 0:
        return {}
    return {c["values"]: c["counts"] for c in pc.value_counts(failed["reason"]).to_pylist()}
