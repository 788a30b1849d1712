"""The read API over a BigQuery event table.

Filters are rendered in the BigQuery dialect (`eventpipe.query.bigquery_dialect`) from the
same tree as the lake's, with the same semantics. The date bounds of `timestamp` become a
predicate on it, which prunes the table's day partitions.
"""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa

from eventpipe.api.query import EventQuery
from eventpipe.query.bigquery_dialect import BIGQUERY, query_parameter
from eventpipe.schemas import arrow_schema
from eventpipe.serving.event_query import connection_condition, empty_page, seek_condition

log = logging.getLogger(__name__)


def _order_sql(order: str, ascending: bool, by_connection: bool = False) -> str:
    direction = "ASC" if ascending else "DESC"
    tie = "" if order == "messageId" else f", t.`messageId` {direction}"
    if by_connection:  # a seek's key order
        tie += f", t.`connectionId` {direction}"
    return f"t.`{order}` {direction} NULLS LAST{tie}"


class BigQueryReader:
    """Answers list-events queries from one BigQuery event table (thread-safe client)."""

    dialect = BIGQUERY
    schema = arrow_schema()

    def __init__(self, table: str, endpoint: str | None = None, project: str | None = None):
        from eventpipe.core.bigquery_client import make_client

        if len(table.split(".")) != 3:
            raise ValueError(f"{table!r} is not a table id of the form PROJECT.DATASET.TABLE")
        self.table = table
        self.client = make_client(project or table.split(".")[0], endpoint)

    def _where(self, query: EventQuery) -> tuple[str, dict[str, object]]:
        """The WHERE condition of `query` (its connections and predicate) and its parameters."""
        predicate = query.predicate
        where, params = ["TRUE"], {}
        if predicate is not None:
            if predicate.dialect != BIGQUERY.name:
                raise TypeError("the BigQuery backend needs filters rendered in its dialect")
            where, params = [f"({predicate.sql})"], dict(predicate.params)
            if predicate.min_date is not None:
                where.append("t.`timestamp` >= @min_day")  # prunes day partitions
                params["min_day"] = dt.datetime.combine(predicate.min_date, dt.time(), dt.UTC)
            if predicate.max_date is not None:
                where.append("t.`timestamp` < @after_max_day")
                end = predicate.max_date + dt.timedelta(days=1)
                params["after_max_day"] = dt.datetime.combine(end, dt.time(), dt.UTC)
        if query.seek is not None:  # a keyset page: the rows after its key
            condition, seek_params = seek_condition(query.seek, query.ascending, BIGQUERY)
            where.insert(0, condition)
            params.update(seek_params)
        if query.connections is not None:  # the workspace restriction, before the filter
            where.insert(0, connection_condition(query.connections, "t.`connectionId`"))
        return " AND ".join(where), params

    def statement(self, query: EventQuery) -> tuple[str, dict[str, object]]:
        """The SQL and parameters of a list-events query."""
        where, params = self._where(query)
        columns = ", ".join(f"t.`{c}`" for c in query.columns)
        params.update(limit=query.limit, offset=query.first)
        sql = (
            f"SELECT {columns} FROM `{self.table}` AS t WHERE {where}"
            f" ORDER BY {_order_sql(query.order, query.ascending, query.seek is not None)}"
            " LIMIT @limit OFFSET @offset"
        )
        return sql, params

    def _query(self, sql: str, params: dict[str, object]) -> pa.Table:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[query_parameter(k, v) for k, v in params.items()]
        )
        return self.client.query(sql, job_config=config).to_arrow(create_bqstorage_client=False)

    def count_events(self, query: EventQuery) -> int:
        """How many events match `query` (paging, order and columns are ignored)."""
        if query.connections is not None and not query.connections:
            return 0
        where, params = self._where(query)
        rows = self._query(f"SELECT count(*) AS n FROM `{self.table}` AS t WHERE {where}", params)
        return int(rows["n"][0].as_py())

    def list_events(self, query: EventQuery) -> pa.Table:
        """The page of events `query` asks for, typed as the lake's columns."""
        if query.connections is not None and not query.connections:
            return empty_page(query.columns)  # a workspace without connections
        rows = self._query(*self.statement(query))
        wanted = pa.schema([self.schema.field(c).with_nullable(True) for c in query.columns])
        plain = [pa.field(f.name, f.type) for f in rows.schema]  # drops JSON extension metadata
        return rows.cast(pa.schema(plain)).cast(wanted)
