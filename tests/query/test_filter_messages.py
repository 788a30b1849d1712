"""The 400 messages of bad filters, word for word: the parameter named and the reason."""

from __future__ import annotations

import json

import pytest

from eventpipe.api.filters import FilterError, parse_filter


def _one(prop: object, operator: object, values: object = None, **extra: object) -> str:
    condition: dict = {"property": prop, "operator": operator, **extra}
    if values is not None:
        condition["values"] = values
    return json.dumps({"logical": "and", "conditions": [condition]})


C0 = "filter.conditions[0]"
IP = "an IPv4 or IPv6 address, not multicast and without a zone (%...)"

CASES = [
    (_one("userId", "is", "u1"), f"{C0}.values", "must be an array of strings"),
    (_one("userId", "is", [None]), f"{C0}.values[0]", "must be a string"),
    (_one("userId", "is", [{"a": 1}]), f"{C0}.values[0]", "must be a string"),
    (
        _one("userId", "is one of", ["a", "\ud800x"]),
        f"{C0}.values[1]",
        "is not valid Unicode (lone surrogate \\ud800)",
    ),
    (
        _one("userId\udfff", "is", ["a"]),
        f"{C0}.property",
        "is not valid Unicode (lone surrogate \\udfff)",
    ),
    (
        _one("userId", "is between", ["a"]),
        f"{C0}.values",
        "operator 'is between' takes exactly 2 values, got 1",
    ),
    (
        _one("userId", "is not between", ["a", "b", "c"]),
        f"{C0}.values",
        "operator 'is not between' takes exactly 2 values, got 3",
    ),
    (
        _one("userId", "is one of", []),
        f"{C0}.values",
        "operator 'is one of' takes 1 to 1000 values, got 0",
    ),
    (
        _one("userId", "is not one of", ["a"] * 1001),
        f"{C0}.values",
        "operator 'is not one of' takes 1 to 1000 values, got 1001",
    ),
    (_one("userId", "is null", ["a"]), f"{C0}.values", "operator 'is null' takes no values, got 1"),
    (_one("userId", "is", []), f"{C0}.values", "operator 'is' takes exactly 1 value, got 0"),
    (
        _one("connectionId", "is", ["2147483648"]),
        f"{C0}.values[0]",
        "'2147483648' is out of range for a 32-bit int (int property 'connectionId')",
    ),
    (
        _one("context.screen.width", "is", ["-32769"]),
        f"{C0}.values[0]",
        "'-32769' is out of range for a 16-bit int (int property 'context.screen.width')",
    ),
    (
        _one("connectionId", "is between", ["1", "x"]),
        f"{C0}.values[1]",
        "'x' is not an integer (int property 'connectionId')",
    ),
    (
        _one("context.location.latitude", "is", ["1e999"]),
        f"{C0}.values[0]",
        "'1e999' is out of range (float property 'context.location.latitude')",
    ),
    (
        _one("context.location.latitude", "is", ["inf"]),
        f"{C0}.values[0]",
        "'inf' is not a number (float property 'context.location.latitude')",
    ),
    (
        _one("context.screen.density", "is", ["two"]),
        f"{C0}.values[0]",
        "'two' is not a decimal number (decimal property 'context.screen.density')",
    ),
    (
        _one("timestamp", "is", ["yesterday"]),
        f"{C0}.values[0]",
        "'yesterday' is not an ISO 8601 datetime (datetime property 'timestamp')",
    ),
    (
        _one("timestamp", "is", ["2025-10-20T" + "0" * 60]),
        f"{C0}.values[0]",
        f"'2025-10-20T{'0' * 60}' is not an ISO 8601 datetime (datetime property 'timestamp')",
    ),
    (
        _one("kpid", "is", ["nope"]),
        f"{C0}.values[0]",
        "'nope' is not a UUID (uuid property 'kpid')",
    ),
    (
        _one("context.ip", "is", ["300.1.1.1"]),
        f"{C0}.values[0]",
        f"'300.1.1.1' is not {IP} (ip property 'context.ip')",
    ),
    (
        _one("properties.when", "is after", ["soon"]),
        f"{C0}.values[0]",
        "'soon' is not an ISO 8601 datetime",
    ),
    (
        _one("context.browser", "is", ["a"]),
        f"{C0}.property",
        "'context.browser' is an object; use one of: context.browser.name, "
        "context.browser.other, context.browser.version",
    ),
    (
        _one("userId.x", "is", ["a"]),
        f"{C0}.property",
        "unknown property 'userId.x' ('userId' has no fields)",
    ),
    (_one("nope", "is", ["a"]), f"{C0}.property", "unknown property 'nope'"),
    (_one("context.nope.x", "is", ["a"]), f"{C0}.property", "unknown property 'context.nope.x'"),
    (
        _one("properties..a", "exists"),
        f"{C0}.property",
        "empty key in json path 'properties..a'",
    ),
    (
        _one("properties." + ".".join(["a"] * 33), "exists"),
        f"{C0}.property",
        "json path deeper than 32",
    ),
    (_one(5, "is", ["a"]), f"{C0}.property", "must be a non-empty string"),
    (_one("", "is", ["a"]), f"{C0}.property", "must be a non-empty string"),
    (_one("userId", "equals", ["a"]), f"{C0}.operator", "unknown operator 'equals'"),
    (_one("userId", 3, ["a"]), f"{C0}.operator", "unknown operator 3"),
    (
        _one("kpid", "contains", ["a"]),
        f"{C0}.operator",
        "operator 'contains' is not valid for uuid property 'kpid'; "
        "valid: is, is not, is null, is not null",
    ),
    (
        _one("messageId", "is null"),
        f"{C0}.operator",
        "operator 'is null' is not valid for string property 'messageId'; valid: is, is not, "
        "is one of, is not one of, is less than, is less than or equal to, is greater than, "
        "is greater than or equal to, is between, is not between, contains, does not contain, "
        "starts with, ends with, is empty, is not empty",
    ),
    (_one("userId", "is", ["a"], x=1, b=2), C0, "unknown key(s): b, x"),
    (
        '{"logical": "and", "conditions": [1]}',
        C0,
        "must be an object with property, operator and values",
    ),
    ('{"logical": "and", "conditions": {}}', "filter.conditions", "must be an array of conditions"),
    ('{"logical": "nand", "conditions": []}', "filter.logical", 'must be "and" or "or"'),
    ('{"logical": "and", "conditions": [], "z": 1, "a": 2}', "filter", "unknown key(s): a, z"),
    ("[]", "filter", "must be a JSON object with logical and conditions"),
    (
        "{",
        "filter",
        "is not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    ),
    ("[" * 70_000, "filter", "larger than 64 KB"),
    (
        json.dumps({"logical": "or", "conditions": [{}] * 101}),
        "filter.conditions",
        "at most 100 conditions, got 101",
    ),
    (
        json.dumps(
            {
                "logical": "or",
                "conditions": [{"values": ["1"] * 1000}] * 3 + [{"values": ["1"]}, {"values": 5}],
            }
        ),
        "filter.conditions",
        "at most 3000 values in all conditions together, got 3001",
    ),
]


@pytest.mark.parametrize(("text", "parameter", "reason"), CASES)
def test_bad_filter_message(text: str, parameter: str, reason: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert (info.value.parameter, info.value.reason) == (parameter, reason)
    assert str(info.value) == f"{parameter}: {reason}"


@pytest.mark.parametrize(
    "text",
    [
        _one("userId", "is", ["a"] * 1),
        _one("userId", "is one of", ["a"] * 1000),
        _one("properties." + ".".join(["a"] * 32), "exists"),
        _one("context.screen.width", "is between", ["-32768", "32767"]),
        json.dumps(
            {
                "logical": "or",
                "conditions": [{"property": "userId", "operator": "is", "values": ["a"]}] * 100,
            }
        ),
        json.dumps(
            {
                "logical": "or",
                "conditions": [
                    {"property": "userId", "operator": "is one of", "values": ["a"] * 1000}
                ]
                * 3,
            }
        ),
    ],
)
def test_filters_at_the_limits_are_accepted(text: str) -> None:
    assert parse_filter(text) is not None


def test_a_filter_of_exactly_64_kb_is_accepted() -> None:
    text = _one("userId", "is", ["é"])
    text += " " * (64 * 1024 - len(text.encode("utf-8")))
    assert parse_filter(text) is not None
    with pytest.raises(FilterError, match="larger than 64 KB"):
        parse_filter(text + " ")
