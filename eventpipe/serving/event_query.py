"""A validated list-events request, and the SQL ordering and empty page every backend of
the lake shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from eventpipe.schemas import TOP_LEVEL_COLUMNS, arrow_schema
from eventpipe.serving.predicate import Predicate, quote_identifier


@dataclass(frozen=True)
class EventQuery:
    """A validated list-events request."""

    columns: tuple[str, ...] = TOP_LEVEL_COLUMNS
    predicate: Predicate | None = None
    order: str = "timestamp"
    ascending: bool = False
    first: int = 0
    limit: int = 100


def order_sql(order: str, ascending: bool) -> str:
    """ORDER BY terms: the order column (nulls last), then messageId, then the row's place
    in the lake, so that the order is total even if a messageId were stored twice."""
    direction = "ASC" if ascending else "DESC"
    tie = "" if order == "messageId" else f', t."messageId" {direction}'
    place = f", t.filename {direction}, t.file_row_number {direction}"
    return f"t.{quote_identifier(order)} {direction} NULLS LAST{tie}{place}"


def empty_page(columns: Sequence[str]) -> pa.Table:
    """A page without rows, with the schema of `columns`."""
    schema = arrow_schema()
    return pa.Table.from_pylist([], schema=pa.schema([schema.field(c) for c in columns]))
