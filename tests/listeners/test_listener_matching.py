"""A listener's filter gives the read API's answers: the filter semantic table of
tests/api (every operator on every type) run through `match_events` over an Arrow table
of the canonical events, as the collector's tap runs it, against the lake reader's
expected ids; and the workspace restriction always applies."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import orjson
import pyarrow as pa
import pytest
from api_support import CANONICAL_EVENTS
from test_api_filter_semantics import CASES

from eventpipe.core.duck import connect
from eventpipe.listeners.matching import POSITION, compile_listener_filter, match_events, watch
from eventpipe.schemas import arrow_schema


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return connect()


@pytest.fixture(scope="module")
def accepted() -> pa.Table:
    table = pa.Table.from_pylist(CANONICAL_EVENTS, schema=arrow_schema())
    return table.append_column(POSITION, pa.array(range(table.num_rows), pa.int64()))


def _connections(table: pa.Table) -> set[int]:
    return set(table.column("connectionId").to_pylist())


def _matched(con, accepted: pa.Table, document: dict | None, connections=None) -> list[str]:
    predicate = compile_listener_filter(
        None if document is None else orjson.dumps(document).decode()
    )
    seen = _connections(accepted) if connections is None else connections
    found = match_events(con, accepted, [watch("l", predicate, seen, 1000)])
    return [orjson.loads(e)["messageId"] for e in found["l"].events] if "l" in found else []


@pytest.mark.parametrize(("prop", "operator", "values", "expected"), CASES)
def test_a_condition_matches_what_it_matches_on_the_lake(
    con: duckdb.DuckDBPyConnection,
    accepted: pa.Table,
    prop: str,
    operator: str,
    values: list[str] | None,
    expected: list[str],
) -> None:
    condition: dict = {"property": prop, "operator": operator}
    if values is not None:
        condition["values"] = values
    got = _matched(con, accepted, {"logical": "and", "conditions": [condition]})
    assert sorted(got) == sorted(expected)


def test_events_come_in_arrival_order_and_in_get_events_shape(con, accepted: pa.Table) -> None:
    found = match_events(con, accepted, [watch("l", None, _connections(accepted), 1000)])
    events = [orjson.loads(e) for e in found["l"].events]
    assert [e["messageId"] for e in events] == [r["messageId"] for r in CANONICAL_EVENTS]
    assert all("traits" in e for e in events)


def test_only_the_first_limit_matches_are_converted_all_are_counted(con, accepted) -> None:
    found = match_events(con, accepted, [watch("l", None, _connections(accepted), 3)])
    assert found["l"].count == len(CANONICAL_EVENTS)
    assert [orjson.loads(e)["messageId"] for e in found["l"].events] == [
        r["messageId"] for r in CANONICAL_EVENTS[:3]
    ]


def test_the_connection_restriction_comes_before_the_filter(con, accepted: pa.Table) -> None:
    everything = {
        "logical": "or",
        "conditions": [{"property": "messageId", "operator": "is not empty"}],
    }
    assert _matched(con, accepted, everything, connections=set()) == []
    one = sorted(_connections(accepted))[0]
    mine = [r["messageId"] for r in CANONICAL_EVENTS if r["connectionId"] == one]
    assert _matched(con, accepted, everything, connections={one}) == mine


def test_a_failing_filter_does_not_stop_the_other_listeners(con, accepted: pa.Table) -> None:
    seen = _connections(accepted)
    broken = watch("broken", None, seen, 10)
    broken = replace(broken, predicate=replace(broken.predicate, sql="error('boom') IS NULL"))
    found = match_events(con, accepted, [broken, watch("fine", None, seen, 10)])
    assert set(found) == {"fine"}
    assert found["fine"].count == len(CANONICAL_EVENTS)
