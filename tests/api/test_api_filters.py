"""The filter compiler on its own: operator/type table, value counts, parsing, limits."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from eventpipe.api.filters import (
    MAX_CONDITIONS,
    NULL_OPERATORS,
    OPERATORS,
    FilterError,
    compile_filter,
    json_pointer,
    parse_filter,
    resolve_property,
)
from eventpipe.query.duckdb_dialect import DUCKDB
from eventpipe.query.values import parse_datetime
from eventpipe.schemas import iter_leaves

STRING_OPS = {
    "is",
    "is not",
    "is one of",
    "is not one of",
    "contains",
    "does not contain",
    "starts with",
    "ends with",
    "is empty",
    "is not empty",
    "is less than",
    "is less than or equal to",
    "is greater than",
    "is greater than or equal to",
    "is between",
    "is not between",
}
NUMBER_OPS = {
    "is",
    "is not",
    "is one of",
    "is not one of",
    "is less than",
    "is less than or equal to",
    "is greater than",
    "is greater than or equal to",
    "is between",
    "is not between",
}
EXPECTED_OPS = {
    "string": STRING_OPS,
    "int": NUMBER_OPS,
    "float": NUMBER_OPS,
    "decimal": NUMBER_OPS,
    "datetime": {
        "is",
        "is not",
        "is before",
        "is on or before",
        "is after",
        "is on or after",
        "is between",
        "is not between",
    },
    "boolean": {"is true", "is false"},
    "uuid": {"is", "is not"},
    "ip": {"is", "is not"},
    "json": set(OPERATORS),
}
SAMPLE_VALUE = {
    "string": "x",
    "int": "1",
    "float": "1.5",
    "decimal": "1.5",
    "datetime": "2025-01-01",
    "boolean": "true",
    "uuid": "960ae86c-fc6e-438a-ae03-838fa6c94946",
    "ip": "1.2.3.4",
    "json": "x",
}


def _values_for(operator: str, kind: str) -> list[str]:
    if operator in {
        "is true",
        "is false",
        "is empty",
        "is not empty",
        "is null",
        "is not null",
        "exists",
        "does not exist",
    }:
        return []
    value = SAMPLE_VALUE[kind]
    if operator in {"is before", "is on or before", "is after", "is on or after"}:
        value = SAMPLE_VALUE["datetime"]
    if operator in {"is between", "is not between"}:
        return [value] * 2
    return [value]


def _one(prop: str, operator: str, values: list | None = None) -> dict:
    condition: dict = {"property": prop, "operator": operator}
    if values is not None:
        condition["values"] = values
    return {"logical": "and", "conditions": [condition]}


def test_there_are_26_operators() -> None:
    assert len(OPERATORS) == len(set(OPERATORS)) == 26


@pytest.mark.parametrize(("path", "leaf"), list(iter_leaves()), ids=[p for p, _ in iter_leaves()])
def test_operator_table_for_every_leaf(path: str, leaf) -> None:
    allowed = set(EXPECTED_OPS[leaf.kind])
    if leaf.read_optional and leaf.kind != "json":
        allowed |= set(NULL_OPERATORS)
    for operator in OPERATORS:
        document = _one(path, operator, _values_for(operator, leaf.kind))
        if operator in allowed:
            compile_filter(document)
        else:
            with pytest.raises(FilterError) as info:
                compile_filter(document)
            assert info.value.parameter == "filter.conditions[0].operator"
            assert repr(operator) in info.value.reason and repr(path) in info.value.reason


@pytest.mark.parametrize("path", ["connectionId", "messageId", "timestamp", "type", "anonymousId"])
def test_required_columns_have_no_null_operators(path: str) -> None:
    with pytest.raises(FilterError, match="not valid"):
        compile_filter(_one(path, "is null"))


@pytest.mark.parametrize(
    ("prop", "operator", "values", "parameter", "reason"),
    [
        ("userId", "is", [], "filter.conditions[0].values", "exactly 1 value, got 0"),
        ("userId", "is", ["a", "b"], "filter.conditions[0].values", "exactly 1 value, got 2"),
        ("userId", "is between", ["a"], "filter.conditions[0].values", "exactly 2 values"),
        ("userId", "is one of", [], "filter.conditions[0].values", "1 to 1000 values"),
        ("userId", "is one of", ["a"] * 1001, "filter.conditions[0].values", "1 to 1000"),
        ("userId", "is null", ["a"], "filter.conditions[0].values", "no values"),
        ("properties.a", "exists", ["a"], "filter.conditions[0].values", "no values"),
        ("userId", "is", "u1", "filter.conditions[0].values", "array of strings"),
        ("userId", "is", [{"a": 1}], "filter.conditions[0].values[0]", "must be a string"),
        ("userId", "is", [None], "filter.conditions[0].values[0]", "must be a string"),
        ("connectionId", "is", ["abc"], "filter.conditions[0].values[0]", "not an integer"),
        ("connectionId", "is", ["1.5"], "filter.conditions[0].values[0]", "not an integer"),
        ("connectionId", "is", ["2147483648"], "filter.conditions[0].values[0]", "32-bit"),
        ("context.screen.width", "is", ["40000"], "filter.conditions[0].values[0]", "16-bit"),
        ("context.session.id", "is", ["9" * 30], "filter.conditions[0].values[0]", "integer"),
        (
            "context.location.latitude",
            "is",
            ["nan"],
            "filter.conditions[0].values[0]",
            "not a number",
        ),
        (
            "context.location.latitude",
            "is",
            ["1e999"],
            "filter.conditions[0].values[0]",
            "out of range",
        ),
        (
            "context.location.latitude",
            "is",
            ["0x10"],
            "filter.conditions[0].values[0]",
            "not a number",
        ),
        (
            "context.screen.density",
            "is",
            ["two"],
            "filter.conditions[0].values[0]",
            "not a decimal",
        ),
        ("timestamp", "is", ["yesterday"], "filter.conditions[0].values[0]", "ISO 8601"),
        ("timestamp", "is before", ["2025-13-01"], "filter.conditions[0].values[0]", "ISO 8601"),
        (
            "timestamp",
            "is between",
            ["2025-01-01", "x"],
            "filter.conditions[0].values[1]",
            "ISO 8601",
        ),
        ("properties.when", "is after", ["soon"], "filter.conditions[0].values[0]", "ISO 8601"),
        ("kpid", "is", ["not-a-uuid"], "filter.conditions[0].values[0]", "not a UUID"),
        ("context.ip", "is", ["300.1.1.1"], "filter.conditions[0].values[0]", "not an IP"),
        ("nope", "is", ["a"], "filter.conditions[0].property", "unknown property 'nope'"),
        ("context", "is", ["a"], "filter.conditions[0].property", "is an object"),
        ("context.browser", "is", ["a"], "filter.conditions[0].property", "is an object"),
        ("context.nope", "is", ["a"], "filter.conditions[0].property", "unknown property"),
        ("userId.x", "is", ["a"], "filter.conditions[0].property", "has no fields"),
        ("properties..a", "exists", None, "filter.conditions[0].property", "empty key"),
        ("properties.", "exists", None, "filter.conditions[0].property", "empty key"),
        ("", "is", ["a"], "filter.conditions[0].property", "non-empty string"),
        (5, "is", ["a"], "filter.conditions[0].property", "non-empty string"),
        ('userId" OR 1=1 --', "is", ["a"], "filter.conditions[0].property", "unknown property"),
        ("userId", "equals", ["a"], "filter.conditions[0].operator", "unknown operator"),
        ("userId", None, ["a"], "filter.conditions[0].operator", "unknown operator"),
        ("userId", "IS", ["a"], "filter.conditions[0].operator", "unknown operator"),
    ],
)
def test_condition_errors(prop, operator, values, parameter: str, reason: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(_one(prop, operator, values))
    assert info.value.parameter == parameter
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("text", "parameter", "reason"),
    [
        ("{", "filter", "not valid JSON"),
        ("[]", "filter", "must be a JSON object"),
        ('"and"', "filter", "must be a JSON object"),
        ('{"conditions": []}', "filter.logical", '"and" or "or"'),
        ('{"logical": "xor", "conditions": []}', "filter.logical", '"and" or "or"'),
        ('{"logical": "and"}', "filter.conditions", "array"),
        ('{"logical": "and", "conditions": {}}', "filter.conditions", "array"),
        ('{"logical": "and", "conditions": [], "x": 1}', "filter", "unknown key"),
        ('{"logical": "and", "conditions": [1]}', "filter.conditions[0]", "must be an object"),
        (
            '{"logical": "and", "conditions": [{"property": "userId", "operator": "is", '
            '"values": ["a"], "extra": 1}]}',
            "filter.conditions[0]",
            "unknown key",
        ),
        ("[" * 100_000, "filter", "larger than 64 KB"),
        ("[" * 5000 + "]" * 5000, "filter", "not valid JSON"),
    ],
)
def test_document_errors(text: str, parameter: str, reason: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert info.value.parameter == parameter
    assert reason in info.value.reason


def test_too_many_conditions() -> None:
    condition = {"property": "userId", "operator": "is", "values": ["a"]}
    compile_filter({"logical": "or", "conditions": [condition] * MAX_CONDITIONS})
    with pytest.raises(FilterError, match="at most 100 conditions"):
        compile_filter({"logical": "or", "conditions": [condition] * (MAX_CONDITIONS + 1)})


def test_blank_filter_is_no_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter("  ") is None


def test_values_are_bound_never_inlined() -> None:
    evil = "x'); DROP TABLE t; --"
    predicate = compile_filter(_one("userId", "is", [evil]))
    assert evil not in predicate.sql
    assert evil in predicate.params.values()
    predicate = compile_filter(_one(f"properties.{evil}", "exists"))
    assert "DROP" not in predicate.sql
    assert json_pointer([evil]) in predicate.params.values()


def test_numbers_and_booleans_are_accepted_as_values() -> None:
    predicate = compile_filter(_one("connectionId", "is one of", [5, "6", 7]))
    assert sorted(predicate.params.values()) == [5, 6, 7]
    compile_filter(_one("properties.flag", "is", [True]))


@pytest.mark.parametrize(
    ("path", "column", "json_path"),
    [
        ("userId", 't."userId"', None),
        ("context.browser.name", 't."context"."browser"."name"', None),
        ("context.session.id", 't."context"."session"."id"', None),
        ("properties", 't."properties"', ()),
        ("traits.address.city", 't."traits"', ("address", "city")),
        ("properties.a/b~c.0", 't."properties"', ("a/b~c", "0")),
    ],
)
def test_resolve_property(path: str, column: str, json_path) -> None:
    target = resolve_property(path)
    assert (DUCKDB.column(target.path), target.json_path) == (column, json_path)


def test_json_pointer_escapes() -> None:
    assert json_pointer(["a/b", "c~d", "0"]) == "/a~1b/c~0d/0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-20", dt.datetime(2025, 10, 20, tzinfo=dt.UTC)),
        ("2025-10-20T16:15:24.010Z", dt.datetime(2025, 10, 20, 16, 15, 24, 10_000, dt.UTC)),
        ("2025-10-20T18:15:24+02:00", dt.datetime(2025, 10, 20, 16, 15, 24, tzinfo=dt.UTC)),
        ("2025-10-20 16:15", dt.datetime(2025, 10, 20, 16, 15, tzinfo=dt.UTC)),
    ],
)
def test_parse_datetime(text: str, expected: dt.datetime) -> None:
    assert parse_datetime(text) == expected


@pytest.mark.parametrize(
    ("conditions", "logical", "bounds"),
    [
        ([("timestamp", "is", ["2025-10-19T23:00:00-02:00"])], "and", ("2025-10-20", "2025-10-20")),
        ([("timestamp", "is after", ["2025-10-19"])], "and", ("2025-10-19", None)),
        ([("timestamp", "is on or before", ["2025-10-19"])], "and", (None, "2025-10-19")),
        (
            [
                ("timestamp", "is between", ["2025-10-01", "2025-10-03"]),
                ("timestamp", "is after", ["2025-10-02T10:00:00Z"]),
            ],
            "and",
            ("2025-10-02", "2025-10-03"),
        ),
        ([("timestamp", "is not between", ["2025-10-01", "2025-10-03"])], "and", (None, None)),
        ([("timestamp", "is after", ["2025-10-19"]), ("userId", "is", ["u"])], "or", (None, None)),
        ([("timestamp", "is after", ["2025-10-19"])], "or", ("2025-10-19", None)),
        ([("receivedAt", "is after", ["2025-10-19"])], "and", (None, None)),
    ],
)
def test_date_bounds_for_partition_pruning(conditions, logical: str, bounds) -> None:
    document = {
        "logical": logical,
        "conditions": [{"property": p, "operator": o, "values": v} for p, o, v in conditions],
    }
    predicate = compile_filter(json.loads(json.dumps(document)))
    expected = tuple(dt.date.fromisoformat(b) if b else None for b in bounds)
    assert (predicate.min_date, predicate.max_date) == expected
