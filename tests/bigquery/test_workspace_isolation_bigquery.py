"""Workspace isolation with `--backend bigquery`: the read cases of
`tests/api/test_workspace_isolation.py` against the emulator, and the restriction's SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest
from api_support import running_server
from test_workspace_isolation import (
    KEY_KINDS,
    LEGACY_KEY,
    World,
    build_world,
    case_event_schema,
    case_list_events,
    check_isolated,
)

from eventpipe.api.app import create_app
from eventpipe.api.bigquery_backend import BigQueryReader
from eventpipe.api.filters import parse_filter
from eventpipe.api.query import EventQuery
from eventpipe.io.bigquery.tables import BigQueryTarget, load_parquet, parquet_bytes, prepare_tables
from eventpipe.query.bigquery_dialect import BIGQUERY
from eventpipe.schemas import arrow_schema
from eventpipe.schemas.bigquery_schema import load_arrow_schema


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("two-workspaces"))


@pytest.fixture(scope="module")
def events_table(world: World, bq_client, bq_endpoint) -> Iterator[str]:
    """A BigQuery table holding the world's events (both workspaces and the orphans)."""
    dataset = f"test-project.ws_{uuid.uuid4().hex[:8]}"
    bq_client.create_dataset(dataset)
    target = BigQueryTarget(table=f"{dataset}.events", endpoint=bq_endpoint)
    prepare_tables(target, bq_client)
    rows = [r for s in world.sides.values() for r in s.rows] + world.orphans
    table = pa.Table.from_pylist(rows, schema=arrow_schema()).cast(load_arrow_schema())
    load_parquet(bq_client, target.table, parquet_bytes(table), f"ws_{uuid.uuid4().hex}")
    yield target.table
    bq_client.delete_dataset(dataset, delete_contents=True)


@pytest.fixture(scope="module")
def bq_url(world: World, events_table: str, bq_endpoint: str) -> Iterator[str]:
    reader = BigQueryReader(events_table, bq_endpoint)
    app = create_app(None, [LEGACY_KEY], reader=reader, catalog=world.catalog)
    with running_server(app) as url:
        yield url


@pytest.mark.parametrize("key", KEY_KINDS)
@pytest.mark.parametrize("side", ["acme", "bolt"])
def test_no_key_reads_another_workspace_on_bigquery(world, bq_url, side, key) -> None:
    check_isolated(world, bq_url, side, key, case_list_events)
    check_isolated(world, bq_url, side, key, case_event_schema)


def test_the_restriction_comes_first_and_the_filter_is_parenthesised() -> None:
    reader = BigQueryReader.__new__(BigQueryReader)
    reader.table = "p.d.events"
    escape = (
        '{"logical": "or", "conditions": ['
        '{"property": "connectionId", "operator": "is", "values": ["9"]},'
        '{"property": "userId", "operator": "is", "values": ["u1"]}]}'
    )
    query = EventQuery(
        connections=frozenset({7, 3}), predicate=parse_filter(escape, dialect=BIGQUERY)
    )
    sql, _ = reader.statement(query)
    where = sql.split(" WHERE ", 1)[1].split(" ORDER BY ")[0]
    assert where.startswith("t.`connectionId` IN (3, 7) AND (")
    assert where.endswith(")") and " OR " in where
    whole, _ = reader.statement(EventQuery(connections=None))
    assert " WHERE TRUE ORDER BY " in whole  # the whole lake: a legacy key


def test_a_workspace_without_connections_reads_nothing_without_querying() -> None:
    # Nothing listens on port 9: any query would fail.
    reader = BigQueryReader("p.d.events", "http://127.0.0.1:9")
    page = reader.list_events(EventQuery(connections=frozenset(), columns=("messageId",)))
    assert page.num_rows == 0 and page.column_names == ["messageId"]
