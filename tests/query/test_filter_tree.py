"""The filter tree on its own: what the serving index may look up, columns, date bounds."""

from __future__ import annotations

import datetime as dt

import pytest

from eventpipe.query.tree import (
    Filter,
    FilterError,
    IndexedCondition,
    filter_from_document,
    index_conditions,
    resolve_property,
)

INDEXED = ("userId", "anonymousId", "context.session.id")
INTEGERS = ("context.session.id",)


def _tree(logical: str, *conditions: tuple) -> Filter:
    return filter_from_document(
        {
            "logical": logical,
            "conditions": [
                {"property": p, "operator": o, "values": list(v)} for p, o, *v in conditions
            ],
        },
        "filter",
    )


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        # json paths: the column, the JSON pointer and the values as sent
        (
            [("properties.a/b~c.0", "is", "x")],
            [IndexedCondition("properties", "/a~1b~0c/0", "is", ("x",))],
        ),
        ([("traits.age", "is greater than", "30")], [("traits", "/age", "is greater than")]),
        # a whole json column is not looked up
        ([("properties", "is empty")], []),
        # indexed string columns, with any operator (the lookup skips what it cannot answer)
        ([("userId", "starts with", "u")], [IndexedCondition("userId", "", "starts with", ("u",))]),
        ([("anonymousId", "is not", "a")], [IndexedCondition("anonymousId", "", "is not", ("a",))]),
        # integer columns: only equality, as the index's decimal text
        (
            [("context.session.id", "is one of", "+07", "8")],
            [IndexedCondition("context.session.id", "", "is one of", ("7", "8"))],
        ),
        (
            [("context.session.id", "is", "0007")],
            [IndexedCondition("context.session.id", "", "is", ("7",))],
        ),
        ([("context.session.id", "is greater than", "7")], []),
        ([("context.session.id", "is not", "7")], []),
        # columns the index does not hold
        ([("event", "is", "A"), ("connectionId", "is", "1")], []),
    ],
)
def test_index_conditions(conditions, expected) -> None:
    found = index_conditions(_tree("and", *conditions), INDEXED, INTEGERS)
    if expected and isinstance(expected[0], tuple):
        found = tuple((c.column, c.pointer, c.operator) for c in found)
    assert list(found) == expected


def test_index_conditions_need_every_match_to_meet_them() -> None:
    one = ("userId", "is", "u1")
    two = ("properties.plan", "is", "pro")
    assert len(index_conditions(_tree("and", one, two), INDEXED, INTEGERS)) == 2
    assert len(index_conditions(_tree("or", one), INDEXED, INTEGERS)) == 1
    assert index_conditions(_tree("or", one, two), INDEXED, INTEGERS) == ()


def test_columns_are_the_top_level_columns_read() -> None:
    tree = _tree("or", ("context.browser.name", "is", "x"), ("traits.a.b", "exists"))
    assert tree.columns == {"context", "traits"}
    assert _tree("and").columns == frozenset()


def test_date_bounds_only_when_every_match_meets_them() -> None:
    day = dt.date(2025, 10, 19)
    after = ("timestamp", "is after", "2025-10-19T10:00:00Z")
    assert _tree("and", after).date_bounds() == (day, None)
    assert _tree("or", after).date_bounds() == (day, None)
    assert _tree("or", after, ("userId", "is", "u")).date_bounds() == (None, None)
    between = ("timestamp", "is between", "2025-10-21", "2025-10-19T23:00:00-02:00")
    assert _tree("and", between).date_bounds() == (dt.date(2025, 10, 20), dt.date(2025, 10, 21))
    assert _tree("and").date_bounds() == (None, None)
    before = ("timestamp", "is before", "2025-10-19T10:00:00Z")
    on_or_after = ("timestamp", "is on or after", "2025-10-21")
    assert _tree("and", before).date_bounds() == (None, day)
    assert _tree("and", on_or_after, before).date_bounds() == (dt.date(2025, 10, 21), day)
    assert _tree("and", ("timestamp", "is not", "2025-10-19")).date_bounds() == (None, None)


def test_conditions_keep_values_as_sent_and_operands_typed() -> None:
    (condition,) = _tree("and", ("context.screen.width", "is between", " 390", "+3024")).conditions
    assert condition.values == (" 390", "+3024")
    assert condition.operands == (390, 3024)
    (json_date,) = _tree("and", ("properties.when", "is before", "2025-10-01")).conditions
    assert json_date.operands == (dt.datetime(2025, 10, 1, tzinfo=dt.UTC),)
    (json_text,) = _tree("and", ("properties.n", "is", "5")).conditions
    assert json_text.operands == ("5",)


def test_errors_name_the_part() -> None:
    with pytest.raises(FilterError) as info:
        _tree("and", ("userId", "is", "a"), ("properties.when", "is after", "soon"))
    assert info.value.parameter == "filter.conditions[1].values[0]"
    assert str(info.value) == f"filter.conditions[1].values[0]: {info.value.reason}"


def test_values_of_other_json_types_are_taken_as_their_json_text() -> None:
    (condition,) = filter_from_document(
        {
            "logical": "and",
            "conditions": [
                {
                    "property": "properties.x",
                    "operator": "is one of",
                    "values": [True, False, 5, 1.5],
                }
            ],
        },
        "filter",
    ).conditions
    assert condition.values == ("true", "false", "5", "1.5")


def test_resolved_properties() -> None:
    json_target = resolve_property("properties.a.0")
    assert (json_target.property, json_target.path, json_target.json_path) == (
        "properties.a.0",
        ("properties",),
        ("a", "0"),
    )
    nested = resolve_property("context.session.id")
    assert (nested.property, nested.path, nested.json_path) == (
        "context.session.id",
        ("context", "session", "id"),
        None,
    )
    with pytest.raises(FilterError) as info:
        resolve_property(None)
    assert info.value.parameter == "property"


@pytest.mark.parametrize(
    ("prop", "null_operators"),
    [("userId", True), ("messageId", False), ("properties", True), ("traits", True)],
)
def test_null_operators_on_optional_properties(prop: str, null_operators: bool) -> None:
    operators = resolve_property(prop).operators()
    assert ("is null" in operators, "is not null" in operators) == (null_operators,) * 2
    assert len(operators) == len(set(operators))
