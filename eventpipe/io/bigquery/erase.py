"""Erasure on the BigQuery sink: a parameterised `DELETE` per affected day partition.

The days come first, from one query that groups the subjects' rows by day; then each day
gets its own `DELETE ... WHERE <partition column> >= @day_start AND < @day_end AND
<subjects>` (pruned to that partition, so a day's DML touches one partition). Every id,
connection and the failed rows' text pattern are query parameters (`IN UNNEST(@ids)`,
`REGEXP_CONTAINS(raw, @pattern)`); the match is `io.erasure_match.Subjects`'s.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eventpipe.io.bigquery.tables import BigQueryTarget
from eventpipe.io.erasure_match import Subjects
from eventpipe.schemas.bigquery_schema import FAILED_PARTITION_FIELD, PARTITION_FIELD

if TYPE_CHECKING:
    from google.cloud import bigquery

_EVENTS = (
    "(`userId` IN UNNEST(@users) OR `previousId` IN UNNEST(@users) "
    "OR `anonymousId` IN UNNEST(@anonymous) OR `kpid` IN UNNEST(@kpids))"
)
_FAILED = "REGEXP_CONTAINS(`raw`, @pattern)"
_CONNECTIONS = "(@all_connections OR `connectionId` IN UNNEST(@connections))"


@dataclass
class BigQueryErasure:
    """Rows deleted from one table, per day (ISO date)."""

    table: str
    days: dict[str, int] = field(default_factory=dict)

    @property
    def removed(self) -> int:
        return sum(self.days.values())


def _parameters(subjects: Subjects) -> list:
    from google.cloud import bigquery

    connections = sorted(subjects.connections or ())
    return [
        bigquery.ArrayQueryParameter("users", "STRING", sorted(subjects.user_ids)),
        bigquery.ArrayQueryParameter("anonymous", "STRING", sorted(subjects.anonymous_ids)),
        bigquery.ArrayQueryParameter("kpids", "STRING", sorted(subjects.kpids)),
        bigquery.ScalarQueryParameter("pattern", "STRING", subjects.text_pattern() or "^$^"),
        bigquery.ScalarQueryParameter("all_connections", "BOOL", subjects.connections is None),
        bigquery.ArrayQueryParameter("connections", "INT64", connections),
    ]


def _query(client: bigquery.Client, sql: str, parameters: list) -> bigquery.QueryJob:
    from google.cloud import bigquery

    job = client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=parameters))
    job.result()
    return job


def _erase_table(
    client: bigquery.Client, table_id: str, column: str, match: str, subjects: Subjects
) -> BigQueryErasure:
    from google.cloud import bigquery

    result = BigQueryErasure(table_id)
    where = f"{match} AND {_CONNECTIONS}"
    params = _parameters(subjects)
    days = _query(
        client,
        f"SELECT DATE(`{column}`) AS day, COUNT(*) AS n FROM `{table_id}` WHERE {where} "
        "GROUP BY day ORDER BY day",
        params,
    )
    for row in days.result():
        day: dt.date = row["day"]
        start = dt.datetime.combine(day, dt.time(), dt.UTC)
        bounds = [
            bigquery.ScalarQueryParameter("day_start", "TIMESTAMP", start),
            bigquery.ScalarQueryParameter("day_end", "TIMESTAMP", start + dt.timedelta(days=1)),
        ]
        job = _query(
            client,
            f"DELETE FROM `{table_id}` WHERE `{column}` >= @day_start AND `{column}` < @day_end "
            f"AND {where}",
            params + bounds,
        )
        affected = job.num_dml_affected_rows
        result.days[day.isoformat()] = int(row["n"] if affected is None else affected)
    return result


def erase_from_bigquery(
    target: BigQueryTarget, subjects: Subjects, client: bigquery.Client | None = None
) -> tuple[BigQueryErasure, BigQueryErasure]:
    """Delete the subjects' rows from the event table and the failed table, a `DELETE` per
    affected day of each; returns what each lost."""
    client = client or target.client()
    events = _erase_table(client, target.table, PARTITION_FIELD, _EVENTS, subjects)
    failed = _erase_table(client, target.failed_table, FAILED_PARTITION_FIELD, _FAILED, subjects)
    return events, failed
