"""The read API with `--backend bigquery`: the lake backend's semantic cases, against the emulator.

The canonical events of the API tests are loaded into a BigQuery table of the emulator
and every case of `test_api_filter_semantics.CASES` runs over HTTP against a real server
whose reader is `BigQueryReader`: every case must give the lake backend's answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pyarrow.dataset as ds
import pytest
from api_support import API_KEY, CANONICAL_EVENTS, list_ids, running_server, write_lake
from test_api_filter_semantics import ALL, CASES

from eventpipe.api.app import create_app
from eventpipe.api.bigquery_backend import (
    BigQueryReader,
    compile_bigquery_filter,
    json_paths,
    parse_bigquery_filter,
)
from eventpipe.api.filters import FilterError
from eventpipe.io.bigquery.tables import (
    BigQueryTarget,
    load_parquet,
    parquet_bytes,
    prepare_tables,
)
from eventpipe.schemas.bigquery_schema import load_arrow_schema


@pytest.fixture(scope="module")
def canonical_table(bq_client, bq_endpoint, tmp_path_factory) -> Iterator[str]:
    """A BigQuery table holding the API tests' canonical events."""
    dataset = f"test-project.api_{uuid.uuid4().hex[:8]}"
    bq_client.create_dataset(dataset)
    target = BigQueryTarget(table=f"{dataset}.events", endpoint=bq_endpoint)
    prepare_tables(target, bq_client)
    lake = write_lake(tmp_path_factory.mktemp("canonical"), CANONICAL_EVENTS)
    rows = ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table()
    rows = rows.drop_columns(["date"]).cast(load_arrow_schema())
    load_parquet(bq_client, target.table, parquet_bytes(rows), f"canonical_{uuid.uuid4().hex}")
    yield target.table
    bq_client.delete_dataset(dataset, delete_contents=True)


@pytest.fixture(scope="module")
def bq_api(canonical_table, bq_endpoint) -> Iterator[httpx.Client]:
    reader = BigQueryReader(canonical_table, bq_endpoint)
    with running_server(create_app(None, [API_KEY], reader=reader)) as url:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            yield client


@pytest.mark.parametrize(("prop", "operator", "values", "expected"), CASES)
def test_condition_matches_as_on_the_lake(bq_api, prop, operator, values, expected):
    condition: dict = {"property": prop, "operator": operator}
    if values is not None:
        condition["values"] = values
    assert list_ids(bq_api, filter={"logical": "and", "conditions": [condition]}) == expected


def test_and_or_and_empty_filters(bq_api):
    both = [
        {"property": "userId", "operator": "is", "values": ["u2"]},
        {"property": "timestamp", "operator": "is after", "values": ["2025-10-19"]},
    ]
    assert list_ids(bq_api, filter={"logical": "and", "conditions": both}) == ["e06"]
    either = [
        {"property": "userId", "operator": "is", "values": ["u3"]},
        {"property": "timestamp", "operator": "is after", "values": ["2025-10-20T17:30:00Z"]},
    ]
    assert list_ids(bq_api, filter={"logical": "or", "conditions": either}) == ["e10", "e04"]
    assert list_ids(bq_api, filter={"logical": "or", "conditions": []}) == ALL


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
    predicate = compile_bigquery_filter(
        {"logical": "and", "conditions": [
            {"property": f"properties.{evil}", "operator": "is", "values": [evil]},
            {"property": "userId", "operator": "is", "values": [evil]},
        ]}
    )  # fmt: skip
    assert evil not in predicate.sql
    assert evil in predicate.params.values()
    assert json_paths(("tags", "0")) == ['$."tags"."0"', '$."tags"[0]']
    assert json_paths(('a"b',)) == ['$."a\\"b"']


def test_date_bounds_prune_partitions(canonical_table, bq_endpoint):
    reader = BigQueryReader(canonical_table, bq_endpoint)
    predicate = parse_bigquery_filter(
        '{"logical": "and", "conditions": [{"property": "timestamp", "operator": "is between",'
        ' "values": ["2025-10-19", "2025-10-19T23:00:00Z"]}]}'
    )
    from eventpipe.api.query import EventQuery

    sql, params = reader.statement(EventQuery(predicate=predicate, connections=None))
    assert "t.`timestamp` >= @min_day" in sql and "t.`timestamp` < @after_max_day" in sql
    assert str(params["min_day"].date()) == "2025-10-19"
    assert str(params["after_max_day"].date()) == "2025-10-20"
    with pytest.raises(FilterError):
        parse_bigquery_filter('{"logical": "xor", "conditions": []}')


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


# As on the lake: escapes in the stored JSON or in the operand do not change equality.
ESCAPED_PROPERTIES = {
    "j1": r'{"u": "caf\u00e9", "s": "a\/b", "q": "say \"hi\"", "t": "tab\there", "n": 10.0}',
    "j2": {"u": "cafe"},
}
ESCAPE_CASES = [
    ("properties.u", "is", ["café"], ["j1"]),
    ("properties.u", "is one of", ["café", "cafe"], ["j2", "j1"]),
    ("properties.u", "is not", ["café"], ["j2"]),
    ("properties.s", "is", ["a/b"], ["j1"]),
    ("properties.q", "is", ['say "hi"'], ["j1"]),
    ("properties.t", "is", ["tab\there"], ["j1"]),
    ("properties.n", "is", ["10"], ["j1"]),
    ("properties.n", "is one of", ["1e1", "x"], ["j1"]),
]


@pytest.fixture(scope="module")
def escaped_api(bq_client, bq_endpoint, tmp_path_factory) -> Iterator[httpx.Client]:
    from api_support import make_event

    events = [make_event(messageId=m, properties=p) for m, p in ESCAPED_PROPERTIES.items()]
    lake = write_lake(tmp_path_factory.mktemp("escaped"), events)
    dataset = f"test-project.json_{uuid.uuid4().hex[:8]}"
    bq_client.create_dataset(dataset)
    target = BigQueryTarget(table=f"{dataset}.events", endpoint=bq_endpoint)
    prepare_tables(target, bq_client)
    rows = ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table()
    data = parquet_bytes(rows.drop_columns(["date"]).cast(load_arrow_schema()))
    load_parquet(bq_client, target.table, data, f"json_{uuid.uuid4().hex}")
    reader = BigQueryReader(target.table, bq_endpoint)
    with (
        running_server(create_app(None, None, insecure_no_auth=True, reader=reader)) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client
    bq_client.delete_dataset(dataset, delete_contents=True)


@pytest.mark.parametrize(("prop", "operator", "values", "expected"), ESCAPE_CASES)
def test_json_strings_compare_by_value_not_by_spelling(
    escaped_api, prop, operator, values, expected
):
    flt = {
        "logical": "and",
        "conditions": [{"property": prop, "operator": operator, "values": values}],
    }
    assert list_ids(escaped_api, filter=flt) == expected
