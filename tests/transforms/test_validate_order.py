"""Which problem an event with several is rejected for: the first in the checking order
(the event's `type`; each section in schema order, its JSON types and values leaf by leaf;
top-level values; then the per-type rules), and how few expressions the check's plan holds."""

from __future__ import annotations

import pytest

from eventpipe.transforms.validate import SECTIONS, problem_sql

from pipeline_support import make_event

# (case, event with two or more problems, reason, field of the one reported)
CASES = [
    (
        "a value before a later leaf's JSON type, in one section",
        make_event(context={"screen": {"width": 0, "height": "x"}}),
        "invalid_value",
        "context.screen.width",
    ),
    (
        "a JSON type before a later leaf's value, in one section",
        make_event(context={"screen": {"width": "x", "height": 0}}),
        "invalid_type",
        "context.screen.width",
    ),
    (
        "the context's own values before a later section's JSON types",
        make_event(context={"ip": "not an ip", "location": {"latitude": "x"}}),
        "invalid_value",
        "context.ip",
    ),
    (
        "a section before the top-level values",
        make_event(userId=5, context={"page": {"url": 5}}),
        "invalid_type",
        "context.page.url",
    ),
    (
        "the sections in schema order",
        make_event(context={"screen": {"width": 0}, "page": {"url": 5}}),
        "invalid_type",
        "context.page.url",
    ),
    (
        "leaf checks before the per-type rules",
        make_event(type="identify", event=..., properties=..., timestamp="yesterday"),
        "invalid_value",
        "timestamp",
    ),
    (
        "the per-type rules in their order",
        make_event(type="page", event="x", groupId="g"),
        "property_not_permitted",
        "event",
    ),
    (
        "the type before everything",
        make_event(type="view", context={"screen": {"width": 0}}),
        "invalid_value",
        "type",
    ),
    ("a wrong type's JSON type", make_event(type=5, userId=5), "invalid_type", "type"),
]


@pytest.mark.parametrize(("case", "event", "reason", "field"), CASES, ids=[c[0] for c in CASES])
def test_the_first_problem_in_checking_order_is_reported(stages, case, event, reason, field):
    [failure] = stages.run(event).failed
    assert (failure["reason"], failure["field"]) == (reason, field)


@pytest.mark.parametrize("sections", [None, frozenset(SECTIONS[:2])])
def test_the_plan_holds_one_expression_per_value_check_not_per_leaf(sections):
    # DuckDB initialises every expression of a plan at each run (a collector group pays it):
    # the JSON types of all leaves are one list expression, each rule one per property.
    assert problem_sql(sections=sections).count("WHEN") <= 50
