"""The semantic table of the filter language, rendered in the DuckDB dialect and run
in-process over the canonical events in Parquet (no server, no query planner): the same
answers as over HTTP (tests/api/test_api_filter_semantics.py, which runs it on both
backends), in a fraction of the time, so that mutation testing can afford it."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from api_support import CANONICAL_EVENTS, write_lake
from test_api_filter_semantics import ALL, CASES, ESCAPE_CASES, ESCAPED_EVENTS, LONG_LIST_CASES

from eventpipe.api.filters import INLINE_VALUES, compile_filter
from eventpipe.query.duckdb_dialect import DUCKDB, table_source


@pytest.fixture(scope="module")
def matching(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """`matching(document, events=CANONICAL)`: the messageIds the filter selects, newest
    first."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    lakes: dict[int, list[str]] = {}

    def run(document: dict, events: list[dict] = CANONICAL_EVENTS) -> list[str]:
        if id(events) not in lakes:
            lake = write_lake(tmp_path_factory.mktemp("lake"), events)
            lakes[id(events)] = sorted(str(p) for p in lake.glob("events/*/*.parquet"))
        predicate = compile_filter(document)
        assert predicate.dialect == DUCKDB.name
        source = table_source("read_parquet($files)", predicate)
        sql = (
            f"SELECT messageId FROM {source} WHERE {predicate.sql}"
            " ORDER BY timestamp DESC, messageId DESC"
        )
        params = {**predicate.params, "files": lakes[id(events)]}
        return [row[0] for row in con.execute(sql, params).fetchall()]

    yield run
    con.close()


def _one(prop: str, operator: str, values: list[str] | None) -> dict:
    condition: dict = {"property": prop, "operator": operator}
    if values is not None:
        condition["values"] = values
    return {"logical": "and", "conditions": [condition]}


@pytest.mark.parametrize(("prop", "operator", "values", "expected"), CASES)
def test_condition_matches(matching, prop, operator, values, expected) -> None:
    assert matching(_one(prop, operator, values)) == expected


@pytest.mark.parametrize(("prop", "operator", "values", "expected"), LONG_LIST_CASES)
def test_long_lists_match_as_short_ones(matching, prop, operator, values, expected) -> None:
    padded = values + [str(-7000 - i) for i in range(INLINE_VALUES + 1)]
    assert matching(_one(prop, operator, padded)) == expected


def test_conditions_combine(matching) -> None:
    u2 = {"property": "userId", "operator": "is", "values": ["u2"]}
    free = {"property": "properties.plan", "operator": "is", "values": ["free"]}
    late = {"property": "timestamp", "operator": "is after", "values": ["2025-10-20T17:30:00Z"]}
    assert matching({"logical": "and", "conditions": [u2, free]}) == ["e02"]
    assert matching({"logical": "or", "conditions": [u2, free, late]}) == ["e10", "e06", "e02"]
    assert matching({"logical": "and", "conditions": []}) == ALL
    pro = {"property": "properties.plan", "operator": "is", "values": ["pro"]}
    ten = {"property": "properties.price", "operator": "is", "values": ["10"]}
    assert matching({"logical": "and", "conditions": [pro, ten]}) == ["e01"]
    assert matching({"logical": "or", "conditions": [pro, ten]}) == ["e02", "e01"]


@pytest.mark.parametrize(("prop", "operator", "values", "expected"), ESCAPE_CASES)
def test_json_strings_compare_by_value(matching, prop, operator, values, expected) -> None:
    assert matching(_one(prop, operator, values), ESCAPED_EVENTS) == expected
