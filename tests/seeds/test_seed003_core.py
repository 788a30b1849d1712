"""The core's `compile_filters` (a filter AND or-groups), which seed 003 builds on: one
binding of parameters across the groups, date bounds and index conditions of the main
filter only, errors naming the group."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from eventpipe.api.filters import FilterError, compile_filters
from eventpipe.query.bigquery_dialect import BIGQUERY
from eventpipe.query.duckdb_dialect import table_source


def _c(prop: str, operator: str, *values: str) -> dict:
    return {"property": prop, "operator": operator, "values": list(values)}


MAIN = {
    "logical": "and",
    "conditions": [
        _c("timestamp", "is on or after", "2026-03-02"),
        _c("timestamp", "is before", "2026-03-04T12:00:00"),
        _c("userId", "is one of", "u1", "u2"),
    ],
}
GROUPS = [
    {"logical": "or", "conditions": [_c("event", "is", "a"), _c("type", "is", "page")]},
    {"logical": "or", "conditions": [_c("properties.tier", "is", "gold"), _c("event", "is", "b")]},
]


def test_groups_are_required_beside_the_filter_with_one_set_of_parameters() -> None:
    predicate = compile_filters(MAIN, GROUPS)
    assert predicate.sql == (
        '((t."timestamp" >= $p0) AND (t."timestamp" < $p1) AND ((t."userId" IN ($p2, $p3))))'
        ' AND ((t."event" = $p4) OR (t."type" = $p5))'
        ' AND ((((CAST(t._j0 AS VARCHAR) IN ($p7)))) OR (t."event" = $p8))'
    )
    assert list(predicate.params) == [f"p{i}" for i in range(9)]
    assert predicate.min_date == dt.date(2026, 3, 2) and predicate.max_date == dt.date(2026, 3, 4)
    assert [c.column for c in predicate.indexed_conditions] == ["userId"]  # not the groups'
    assert predicate.columns == {"timestamp", "userId", "event", "type", "properties"}
    assert [g.logical for g in predicate.groups] == ["or", "or"]
    bigquery = compile_filters(MAIN, GROUPS, dialect=BIGQUERY)
    assert "@p7))" in bigquery.sql and "$p" not in bigquery.sql


def test_duckdb_matches_exactly_the_rows_meeting_the_filter_and_every_group() -> None:
    rows = [
        ("2026-03-02T00:00:00", "u1", "track", "a", '{"tier":"gold"}'),  # yes
        ("2026-03-03T00:00:00", "u2", "page", None, '{"tier":"gold"}'),  # yes
        ("2026-03-03T00:00:00", "u2", "track", "b", None),  # no: group 1
        ("2026-03-03T00:00:00", "u1", "track", "a", '{"tier":"silver"}'),  # no: group 2
        ("2026-03-04T12:00:00", "u1", "track", "a", '{"tier":"gold"}'),  # no: time
        ("2026-03-03T00:00:00", "u3", "track", "a", '{"tier":"gold"}'),  # no: user
    ]
    table = pa.table(
        {
            "timestamp": pa.array(
                [dt.datetime.fromisoformat(r[0]).replace(tzinfo=dt.UTC) for r in rows],
                pa.timestamp("us", tz="UTC"),
            ),
            "userId": [r[1] for r in rows],
            "type": [r[2] for r in rows],
            "event": [r[3] for r in rows],
            "properties": [r[4] for r in rows],
            "n": list(range(len(rows))),
        }
    )
    predicate = compile_filters(MAIN, GROUPS)
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    db.register("events", table)
    sql = f"SELECT n FROM {table_source('events', predicate)} WHERE {predicate.sql} ORDER BY n"
    assert [n for (n,) in db.execute(sql, predicate.params).fetchall()] == [0, 1]


def test_an_error_in_a_group_names_it() -> None:
    bad = [{"logical": "or", "conditions": [_c("event", "is between", "a")]}]
    with pytest.raises(FilterError) as error:
        compile_filters(MAIN, bad)
    assert error.value.parameter == "filter.groups[0].conditions[0].values"


INCLUDES = [
    ('{"g": "admin"}', True),
    ('{"g": ["staff", "admin"]}', True),
    ('{"g": ["staff", 5, {"admin": 1}]}', False),
    ('{"g": [["admin"]]}', False),
    ('{"g": 5}', True),  # a scalar compares as `is one of` does: 5 is "5"
    ('{"g": [5]}', False),  # array elements: JSON strings only
    ('{"g": []}', False),
    ('{"g": null}', False),
    ('{"h": "admin"}', False),
    (None, False),
]


def test_includes_one_of_matches_a_value_or_an_array_holding_one() -> None:
    document = {
        "logical": "and",
        "conditions": [_c("properties.g", "includes one of", "admin", "5")],
    }
    predicate = compile_filters(document, [])
    table = pa.table({"properties": [p for p, _ in INCLUDES], "n": list(range(len(INCLUDES)))})
    db = duckdb.connect()
    db.register("events", table)
    sql = f"SELECT n FROM {table_source('events', predicate)} WHERE {predicate.sql} ORDER BY n"
    found = [n for (n,) in db.execute(sql, predicate.params).fetchall()]
    assert found == [i for i, (_, match) in enumerate(INCLUDES) if match]
    assert "EXISTS(SELECT 1 FROM UNNEST(" in compile_filters(document, [], dialect=BIGQUERY).sql


def test_includes_one_of_is_for_json_paths_only() -> None:
    document = {"logical": "and", "conditions": [_c("userId", "includes one of", "u1")]}
    with pytest.raises(FilterError) as error:
        compile_filters(document, [])
    assert error.value.parameter == "filter.conditions[0].operator"


def test_includes_one_of_answers_the_same_on_bigquery(bq_client) -> None:
    from google.cloud import bigquery

    from eventpipe.query.bigquery_dialect import query_parameter

    document = {
        "logical": "and",
        "conditions": [_c("properties.g", "includes one of", "admin", "5")],
    }
    predicate = compile_filters(document, [], dialect=BIGQUERY)
    rows = " UNION ALL ".join(
        f"SELECT {i} AS n, "
        + ("CAST(NULL AS JSON)" if text is None else f"PARSE_JSON('{text}')")
        + " AS properties"
        for i, (text, _) in enumerate(INCLUDES)
    )
    sql = f"SELECT n FROM ({rows}) AS t WHERE {predicate.sql} ORDER BY n"
    config = bigquery.QueryJobConfig(
        query_parameters=[query_parameter(k, v) for k, v in predicate.params.items()]
    )
    found = [row["n"] for row in bq_client.query(sql, job_config=config).result()]
    assert found == [i for i, (_, match) in enumerate(INCLUDES) if match]
