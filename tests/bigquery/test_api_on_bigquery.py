"""The read API with `--backend bigquery`, against the emulator: paging, whole events,
errors, parameters and pruning. The semantic cases of the filter language run against
this backend in tests/api/test_api_filter_semantics.py (parametrised by backend).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_support import API_KEY, CANONICAL_EVENTS, list_ids, running_server, write_lake
from bq_emulator import bigquery_table
from test_api_filter_semantics import ALL

from eventpipe.api.app import create_app
from eventpipe.api.bigquery_backend import BigQueryReader
from eventpipe.api.filters import FilterError, compile_filter, parse_filter
from eventpipe.query.bigquery_dialect import BIGQUERY, json_paths


@pytest.fixture(scope="module")
def canonical_table(bq_client, bq_endpoint, tmp_path_factory) -> Iterator[str]:
    """A BigQuery table holding the API tests' canonical events."""
    lake = write_lake(tmp_path_factory.mktemp("canonical"), CANONICAL_EVENTS)
    with bigquery_table(bq_client, bq_endpoint, lake) as table:
        yield table


@pytest.fixture(scope="module")
def bq_api(canonical_table, bq_endpoint) -> Iterator[httpx.Client]:
    reader = BigQueryReader(canonical_table, bq_endpoint)
    with running_server(create_app(None, [API_KEY], reader=reader)) as url:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            yield client


def test_order_paging_and_properties(bq_api):
    assert list_ids(bq_api) == ALL
    assert list_ids(bq_api, ascending="true") == ALL[::-1]
    assert list_ids(bq_api, first=2, limit=3) == ALL[2:5]
    by_user = list_ids(bq_api, order="userId", ascending="true", limit=3)
    assert by_user == list_ids(bq_api, order="userId", ascending="true", limit=10)[:3]
    response = bq_api.get("/v1/events", params={"properties": "messageId,traits", "limit": 1})
    assert response.json() == {
        "events": [{"messageId": "e10", "traits": {"address": {"city": "Rome"}}}]
    }


def test_events_read_back_as_from_the_lake(bq_api, tmp_path):
    """Whole events (nested context, json, decimals, datetimes) equal the lake backend's."""
    lake = write_lake(tmp_path, CANONICAL_EVENTS)
    with running_server(create_app(str(lake), None, insecure_no_auth=True)) as url:
        from_lake = httpx.get(url + "/v1/events", params={"limit": 100}, timeout=30).json()
    assert len(from_lake["events"]) == len(CANONICAL_EVENTS)
    assert bq_api.get("/v1/events", params={"limit": 100}).json() == from_lake


def test_bad_filters_are_400_as_on_the_lake(bq_api):
    response = bq_api.get("/v1/events", params={"filter": '{"logical": "and", "conditions": [{}]}'})
    assert response.status_code == 400
    assert response.json()["error"]["parameter"] == "filter.conditions[0].property"


def test_values_and_json_keys_are_parameters():
    evil = "a'); DROP TABLE t; --"
    predicate = compile_filter(
        {"logical": "and", "conditions": [
            {"property": f"properties.{evil}", "operator": "is", "values": [evil]},
            {"property": "userId", "operator": "is", "values": [evil]},
        ]},
        dialect=BIGQUERY,
    )  # fmt: skip
    assert evil not in predicate.sql
    assert evil in predicate.params.values()
    assert json_paths(("tags", "0")) == ['$."tags"."0"', '$."tags"[0]']
    assert json_paths(('a"b',)) == ['$."a\\"b"']
    assert json_paths(("a\\b", "c")) == ['$."a\\\\b"."c"']


def test_date_bounds_prune_partitions(canonical_table, bq_endpoint):
    reader = BigQueryReader(canonical_table, bq_endpoint)
    predicate = parse_filter(
        '{"logical": "and", "conditions": [{"property": "timestamp", "operator": "is between",'
        ' "values": ["2025-10-19", "2025-10-19T23:00:00Z"]}]}',
        dialect=BIGQUERY,
    )
    from eventpipe.api.query import EventQuery

    sql, params = reader.statement(EventQuery(predicate=predicate, connections=None))
    assert "t.`timestamp` >= @min_day" in sql and "t.`timestamp` < @after_max_day" in sql
    assert str(params["min_day"].date()) == "2025-10-19"
    assert str(params["after_max_day"].date()) == "2025-10-20"
    with pytest.raises(FilterError):
        parse_filter('{"logical": "xor", "conditions": []}', dialect=BIGQUERY)


def test_eventpipe_serve_backend_bigquery(canonical_table, bq_endpoint, tmp_path):
    """`eventpipe serve --backend bigquery` as its own process (its --lake is then unused)."""
    from api_support import serve_process

    args = ["--backend", "bigquery", "--bq-table", canonical_table, "--bq-endpoint", bq_endpoint]
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        serve_process(tmp_path, *args, "--api-key", API_KEY) as url,
        httpx.Client(base_url=url, headers=headers) as client,
    ):
        assert list_ids(client, limit=3) == ALL[:3]


def test_serve_backend_bigquery_needs_a_table(caplog):
    from eventpipe.jobs.cli import main

    assert main(["serve", "--backend", "bigquery", "--insecure-no-auth"]) == 2
    assert "--backend bigquery needs --bq-table" in caplog.text


def test_is_one_of_is_one_array_parameter():
    """BigQuery matches a list with IN UNNEST of one ARRAY parameter, not one per value."""
    values = [f"u{i}" for i in range(50)]
    typed = compile_filter(
        {"logical": "and", "conditions": [
            {"property": "userId", "operator": "is not one of", "values": values},
            {"property": "connectionId", "operator": "is one of", "values": ["7", "8", "7"]},
        ]},
        dialect=BIGQUERY,
    )  # fmt: skip
    assert typed.sql == "(NOT (t.`userId` IN UNNEST(@p0))) AND ((t.`connectionId` IN UNNEST(@p1)))"
    assert typed.params == {"p0": values, "p1": [7, 8]}


def test_counts_are_the_lakes(canonical_table, bq_endpoint, tmp_path):
    from eventpipe.api.query import EventQuery, LakeReader

    lake = write_lake(tmp_path, CANONICAL_EVENTS)
    readers = [LakeReader(str(lake)), BigQueryReader(canonical_table, bq_endpoint)]
    documents = [
        None,
        '{"logical": "and", "conditions": [{"property": "type", "operator": "is", "values": ["track"]}]}',
    ]
    for document in documents:
        counts = []
        for reader in readers:
            predicate = parse_filter(document, dialect=reader.dialect) if document else None
            query = EventQuery(
                ("messageId",), predicate, "timestamp", False, 0, 1, connections=None
            )
            counts.append(reader.count_events(query))
        assert counts[0] == counts[1] > 0
    scoped = EventQuery(("messageId",), None, "timestamp", False, 0, 1, connections=frozenset())
    assert readers[1].count_events(scoped) == 0
