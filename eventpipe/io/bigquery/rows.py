"""Event rows checked against the BigQuery table's schema before any load or insert.

A row BigQuery would refuse must never fail a whole load job (nor, on the insert API,
a whole request): `check_rows` splits a table into rows that fit and rows that do
not, each of the latter with the first problem found (reason `invalid_value`, the
column, a message naming it). The checks are vectorised (Arrow compute; JSON text by
DuckDB's `json_valid` re-checked strictly), no Beam here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.core.duck import quote_ident, strict_json_valid
from eventpipe.schemas import EVENT_FIELDS, arrow_schema
from eventpipe.schemas.failures import INVALID_VALUE, PROBLEM_TYPE, failed_rows

# BigQuery's TIMESTAMP range.
TIMESTAMP_MIN = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
TIMESTAMP_MAX = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)
SOURCE = "(bigquery)"


@dataclass(frozen=True)
class RowCheck:
    """One rule a row must pass: the column it concerns and what is wrong when it fails."""

    field: str
    message: str


def _relaxed_schema() -> pa.Schema:
    """The event schema with every column nullable (so that nulls can be checked, not raised)."""
    return pa.schema([f.with_nullable(True) for f in arrow_schema()])


def _problems(events: pa.Table, con: duckdb.DuckDBPyConnection) -> list[tuple[RowCheck, pa.Array]]:
    """Every check with its mask (true where the row fails it), in the order they are reported."""
    checks: list[tuple[RowCheck, pa.Array]] = []
    json_columns = []
    for f in EVENT_FIELDS:
        column = events[f.name]
        if not f.read_optional:
            checks.append(
                (
                    RowCheck(
                        f.name, f"column {f.name!r} is REQUIRED in BigQuery but the row has none"
                    ),
                    pc.is_null(column),
                )
            )
        if f.kind == "datetime":
            outside = pc.or_(pc.less(column, TIMESTAMP_MIN), pc.greater(column, TIMESTAMP_MAX))
            checks.append(
                (
                    RowCheck(f.name, f"column {f.name!r} is outside BigQuery's TIMESTAMP range"),
                    pc.fill_null(outside, False),
                )
            )
        if f.kind == "json":
            json_columns.append(f.name)
    if json_columns:
        con.register("rows_to_check", events.select(json_columns))
        selects = ", ".join(
            f"coalesce(NOT {strict_json_valid(quote_ident(c))}, false) AS {quote_ident(c)}"
            for c in json_columns
        )
        invalid = con.sql(f"SELECT {selects} FROM rows_to_check").to_arrow_table()
        con.unregister("rows_to_check")
        for name in json_columns:
            checks.append(
                (
                    RowCheck(name, f"column {name!r} holds text that is not JSON (BigQuery JSON)"),
                    invalid[name].combine_chunks(),
                )
            )
    return checks


def check_rows(
    events: pa.Table,
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    run_start: dt.datetime,
    keep_extra: bool = False,
) -> tuple[pa.Table, pa.Table]:
    """(rows that fit the BigQuery event table, failed rows for the others).

    The good rows have exactly the event schema (`arrow_schema()`), followed, with
    `keep_extra`, by the columns of `events` beyond it (such as the normaliser's
    archive column); a failed row keeps the whole event as JSON in `raw` (and
    `run_start` when it has no receivedAt).
    """
    extra = [c for c in events.column_names if c not in arrow_schema().names]
    (good, keep), failed = _check(events.select(arrow_schema().names), con, run_id, run_start)
    if keep_extra and extra:
        rest = events.select(extra) if keep is None else events.select(extra).filter(keep)
        for name in extra:
            good = good.append_column(events.schema.field(name), rest[name])
    return good, failed


def _check(
    events: pa.Table, con: duckdb.DuckDBPyConnection, run_id: str, run_start: dt.datetime
) -> tuple[tuple[pa.Table, pa.Array | None], pa.Table]:
    """((good rows, the mask of good rows or None when all are), failed rows)."""
    events = events.cast(_relaxed_schema())
    checks = _problems(events, con)
    first = pa.nulls(events.num_rows, pa.int32())
    for index, (_, mask) in enumerate(checks):
        first = pc.if_else(pc.and_(pc.is_null(first), mask), pa.scalar(index, pa.int32()), first)
    bad = pc.is_valid(first)
    if not pc.any(bad).as_py():
        none_failed = failed_rows_of(events.slice(0, 0), [], run_id, run_start)
        return (events.cast(arrow_schema()), None), none_failed
    keep = pc.invert(bad)
    good = events.filter(keep).cast(arrow_schema())
    rejected = events.filter(bad)
    problems = [
        {"reason": INVALID_VALUE, "field": checks[i][0].field, "message": checks[i][0].message}
        for i in pc.drop_null(first).to_pylist()
    ]
    return (good, keep), failed_rows_of(rejected, problems, run_id, run_start)


def failed_rows_of(
    rejected: pa.Table, problems: list[dict], run_id: str, run_start: dt.datetime
) -> pa.Table:
    """Failed rows (the failed table's schema) of rejected events and their problems.

    `raw` is the event as JSON, datetimes as text (Arrow's, which also prints values
    outside Python's and BigQuery's range); a receivedAt outside the range is replaced
    by `run_start`.
    """
    n = rejected.num_rows
    received = rejected["receivedAt"]
    in_range = pc.and_(
        pc.greater_equal(received, TIMESTAMP_MIN), pc.less_equal(received, TIMESTAMP_MAX)
    )
    printable = rejected
    for name, column in zip(rejected.column_names, rejected.columns, strict=True):
        if pa.types.is_timestamp(column.type):
            index = printable.schema.get_field_index(name)
            printable = printable.set_column(index, name, pc.cast(column, pa.string()))
    rows = pa.table(
        {
            "problem": pa.array(problems, PROBLEM_TYPE),
            "received_at": pc.if_else(in_range, received, pa.scalar(None, received.type)),
            "source": pa.array([SOURCE] * n, pa.string()),
            "line": pa.array([0] * n, pa.int64()),
            "connection_id": rejected["connectionId"],
            "raw": pa.array(
                [orjson.dumps(r, default=str).decode() for r in printable.to_pylist()],
                pa.string(),
            ),
        }
    )
    return failed_rows(rows, "raw", run_id, run_start, record_level=True)


def json_rows(table: pa.Table) -> list[dict]:
    """Rows for the insert API: datetimes as RFC 3339 text, decimals as text, JSON as text."""
    return json_rows_of(table.to_pylist())


def json_rows_of(rows: list[dict]) -> list[dict]:
    """Python rows made JSON-safe for the insert API (datetimes, decimals -> text)."""
    return orjson.loads(orjson.dumps(rows, default=str))
