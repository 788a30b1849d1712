"""How the DuckDB rendering is shaped for speed (the semantics: test_render_duckdb.py):
json values extracted once per row, JSON text compared in one parse, short lists inline,
long ones one list parameter; and what the lake's predicate carries besides its SQL."""

from __future__ import annotations

import pytest

from eventpipe.api.filters import FilterError, compile_filter, parse_filter
from eventpipe.query.duckdb_dialect import quote_identifier, table_source
from eventpipe.query.tree import IndexedCondition


def _filter(logical: str, *conditions: tuple) -> dict:
    return {
        "logical": logical,
        "conditions": [
            {"property": p, "operator": o, "values": list(v)} for p, o, *v in conditions
        ],
    }


def test_each_json_value_is_extracted_once_per_row() -> None:
    predicate = compile_filter(
        _filter(
            "or",
            ("properties.plan", "is", "pro"),
            ("properties.plan", "contains", "r"),
            ("traits.plan", "exists"),
        )
    )
    assert predicate.extracts == (
        ("_j0", 'json_extract(t."properties", $p0)'),
        ("_j1", 'json_extract(t."traits", $p0)'),
    )
    assert list(predicate.params.values()).count("/plan") == 1  # one parameter per pointer
    assert table_source("rel", predicate) == (
        '(SELECT *, json_extract(t."properties", $p0) AS _j0, '
        'json_extract(t."traits", $p0) AS _j1 FROM rel AS t) AS t'
    )
    assert table_source("rel", None) == "rel AS t"
    assert table_source("rel", compile_filter(_filter("and", ("userId", "is", "u")))) == "rel AS t"


@pytest.mark.parametrize(
    ("value", "by_spelling"),
    [("pro", True), ("a b~", True), ("X", True), ('say "hi"', False), ("a\\b", False),
     ("tab\t", False), ("del\x7f", False)],
)  # fmt: skip
def test_plain_json_strings_compare_by_their_json_text(value: str, by_spelling: bool) -> None:
    predicate = compile_filter(_filter("and", ("properties.plan", "is", value)))
    spelled = "CAST(t._j0 AS VARCHAR) IN ($p1)" in predicate.sql
    assert spelled == by_spelling
    assert (f'"{value}"' in predicate.params.values()) == by_spelling
    # a whole json column is never compared by its text
    whole = compile_filter(_filter("and", ("properties", "is", "pro")))
    assert "AS VARCHAR" not in whole.sql


@pytest.mark.parametrize(("count", "inline"), [(1, True), (16, True), (17, False)])
def test_short_lists_inline_long_ones_one_parameter(count: int, inline: bool) -> None:
    values = [str(i) for i in range(count)]
    predicate = compile_filter(_filter("and", ("connectionId", "is one of", *values)))
    if inline:
        listed = ", ".join(f"${p}" for p in predicate.params)
        assert predicate.sql == f'((t."connectionId" IN ({listed})))'
        assert list(predicate.params.values()) == list(range(count))
    else:
        assert predicate.sql == '((t."connectionId" IN (SELECT unnest($p0))))'
        assert predicate.params == {"p0": list(range(count))}


def test_decimal_lists_are_doubles() -> None:
    predicate = compile_filter(_filter("and", ("context.screen.density", "is one of", "1", "2.50")))
    assert list(predicate.params.values()) == [1.0, 2.5]
    assert all(type(v) is float for v in predicate.params.values())


def test_quote_identifier() -> None:
    assert quote_identifier('a"b') == '"a""b"'


def test_the_lake_predicate_carries_the_index_conditions_and_bounds() -> None:
    predicate = parse_filter(
        '{"logical": "and", "conditions": ['
        '{"property": "properties.plan", "operator": "is", "values": ["pro"]},'
        '{"property": "timestamp", "operator": "is after", "values": ["2025-10-19"]}]}'
    )
    assert predicate is not None
    assert predicate.indexed_conditions == (
        IndexedCondition("properties", "/plan", "is", ("pro",)),
    )
    assert (str(predicate.min_date), predicate.max_date) == ("2025-10-19", None)
    assert predicate.columns == {"properties", "timestamp"}
    assert compile_filter(_filter("and")).sql == "TRUE"


def test_errors_name_the_parameter_given() -> None:
    with pytest.raises(FilterError) as info:
        compile_filter({"logical": "x", "conditions": []}, "where")
    assert info.value.parameter == "where.logical"
    with pytest.raises(FilterError) as info:
        parse_filter('{"logical": "x", "conditions": []}', "where")
    assert info.value.parameter == "where.logical"
