"""The interface of the read API's backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from eventpipe.query.sql import Dialect

if TYPE_CHECKING:
    from eventpipe.serving.event_query import EventQuery


class EventReader(Protocol):
    """A backend of the read API: the lake (`query.LakeReader`) or a BigQuery table
    (`bigquery_backend.BigQueryReader`)."""

    dialect: Dialect
    """The SQL dialect its filters are rendered in."""
    schema: pa.Schema
    """The schema of the events it serves."""

    def list_events(self, query: EventQuery) -> pa.Table:
        """The page of events `query` asks for, as an Arrow table of its columns."""
        ...

    def count_events(self, query: EventQuery) -> int:
        """How many events match `query` (paging, order and columns are ignored)."""
        ...
