"""Bad input over HTTP: always a 4xx JSON error naming the parameter, never a 500."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import httpx
import pytest
from api_support import list_ids, raw_get
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.api.filters import OPERATORS
from eventpipe.schemas import TOP_LEVEL_COLUMNS, iter_leaves


def _condition(prop: Any, operator: Any, values: Any = None) -> str:
    condition: dict[str, Any] = {"property": prop, "operator": operator}
    if values is not None:
        condition["values"] = values
    return json.dumps({"logical": "and", "conditions": [condition]})


@pytest.mark.parametrize(
    ("params", "parameter", "reason"),
    [
        ({"limit": "0"}, "limit", "greater than or equal to 1"),
        ({"limit": "1001"}, "limit", "less than or equal to 1000"),
        ({"limit": "ten"}, "limit", "integer"),
        ({"limit": "1e3"}, "limit", "integer"),
        ({"first": "-1"}, "first", "greater than or equal to 0"),
        ({"first": "9" * 40}, "first", "less than or equal to"),
        ({"ascending": "maybe"}, "ascending", "boolean"),
        ({"order": "properties"}, "order", "timestamp"),
        ({"order": "context.session.id"}, "order", "timestamp"),
        ({"order": "timestamp; DROP TABLE t"}, "order", "timestamp"),
        ({"properties": "userId,nope"}, "properties", "unknown property 'nope'"),
        ({"properties": "context.browser"}, "properties", "unknown property"),
        ({"properties": 'userId" FROM x --'}, "properties", "unknown property"),
        ({"filter": "{not json"}, "filter", "not valid JSON"),
        ({"filter": "[1]"}, "filter", "JSON object"),
        ({"filter": '{"logical": "nand", "conditions": []}'}, "filter.logical", '"and" or "or"'),
        (
            {"filter": _condition("nope", "is", ["a"])},
            "filter.conditions[0].property",
            "unknown property 'nope'",
        ),
        (
            {"filter": _condition("userId OR 1=1", "is", ["a"])},
            "filter.conditions[0].property",
            "unknown property",
        ),
        (
            {"filter": _condition("userId", "is true")},
            "filter.conditions[0].operator",
            "'is true' is not valid for string property 'userId'",
        ),
        (
            {"filter": _condition("timestamp", "contains", ["2025"])},
            "filter.conditions[0].operator",
            "not valid for datetime property 'timestamp'",
        ),
        (
            {"filter": _condition("kpid", "starts with", ["9"])},
            "filter.conditions[0].operator",
            "uuid property 'kpid'",
        ),
        (
            {"filter": _condition("context.session.id", "contains", ["1"])},
            "filter.conditions[0].operator",
            "int property 'context.session.id'",
        ),
        (
            {"filter": _condition("messageId", "is null")},
            "filter.conditions[0].operator",
            "not valid",
        ),
        (
            {"filter": _condition("userId", "is", ["a", "b"])},
            "filter.conditions[0].values",
            "exactly 1 value, got 2",
        ),
        (
            {"filter": _condition("userId", "is between", ["a"])},
            "filter.conditions[0].values",
            "exactly 2 values, got 1",
        ),
        (
            {"filter": _condition("userId", "is null", ["a"])},
            "filter.conditions[0].values",
            "no values",
        ),
        (
            {"filter": _condition("connectionId", "is", ["12abc"])},
            "filter.conditions[0].values[0]",
            "not an integer",
        ),
        (
            {"filter": _condition("context.location.speed", "is", ["fast"])},
            "filter.conditions[0].values[0]",
            "not a number",
        ),
        (
            {"filter": _condition("timestamp", "is after", ["2025-02-30"])},
            "filter.conditions[0].values[0]",
            "ISO 8601",
        ),
        (
            {"filter": _condition("timestamp", "is after", ["1 OR 1=1"])},
            "filter.conditions[0].values[0]",
            "ISO 8601",
        ),
        (
            {"filter": _condition("kpid", "is", ["' OR 1=1 --"])},
            "filter.conditions[0].values[0]",
            "not a UUID",
        ),
        (
            {
                "filter": json.dumps(
                    {
                        "logical": "or",
                        "conditions": [
                            {"property": "userId", "operator": "is", "values": [str(i)]}
                            for i in range(101)
                        ],
                    }
                )
            },
            "filter.conditions",
            "at most 100 conditions",
        ),
        (
            {
                "filter": json.dumps(
                    {
                        "logical": "or",
                        "conditions": [
                            {"property": f"properties.p{i}", "operator": "is one of", "values": v}
                            for i, v in enumerate([["1"] * 1000] * 3 + [["2"]])
                        ],
                    }
                )
            },
            "filter.conditions",
            "at most 3000 values in all conditions together, got 3001",
        ),
        # Lone surrogates (JSON's \ud800 escape) anywhere: 400, never a 500.
        (
            {"filter": _condition("userId", "is", ["\ud800"])},
            "filter.conditions[0].values[0]",
            "not valid Unicode (lone surrogate \\ud800)",
        ),
        (
            {"filter": _condition("properties.plan", "is one of", ["pro", "a\udfffb"])},
            "filter.conditions[0].values[1]",
            "lone surrogate",
        ),
        (
            {"filter": _condition("properties.\ud800", "is", ["a"])},
            "filter.conditions[0].property",
            "lone surrogate",
        ),
        (
            {"filter": _condition("userId", "\ud800", ["a"])},
            "filter.conditions[0].operator",
            "unknown operator",
        ),
        (
            {"filter": json.dumps({"logical": "and", "conditions": [{"\ud800": 1}]})},
            "filter.conditions[0]",
            "unknown key(s): \\ud800",
        ),
    ],
)
def test_bad_list_request(
    client: httpx.Client, params: dict[str, str], parameter: str, reason: str
) -> None:
    response = client.get("/v1/events", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == 400
    assert error["parameter"] == parameter
    assert reason in error["message"]


def test_filter_over_64_kb_is_refused(server_url: str) -> None:
    text = json.dumps(
        {
            "logical": "and",
            "conditions": [{"property": "userId", "operator": "is", "values": ["x" * (64 * 1024)]}],
        }
    )
    status, body = raw_get(server_url, "/v1/events?filter=" + urllib.parse.quote(text))
    assert status == 400
    assert body["error"]["parameter"] == "filter"
    assert "larger than 64 KB" in body["error"]["message"]


def test_filter_just_under_64_kb_is_answered(server_url: str) -> None:
    value = "é\"'%&" * 800  # escapes to ~3x its size in the URL
    conditions = [{"property": "userId", "operator": "is", "values": [value]}] * 10
    text = json.dumps({"logical": "or", "conditions": conditions}, ensure_ascii=False)
    assert 50_000 < len(text.encode()) < 64 * 1024
    status, body = raw_get(server_url, "/v1/events?filter=" + urllib.parse.quote(text))
    assert (status, body) == (200, {"events": []})


def test_unknown_path_is_a_json_404(client: httpx.Client) -> None:
    response = client.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["status"] == 404


def test_wrong_method_is_a_json_405(client: httpx.Client) -> None:
    response = client.post("/v1/events")
    assert response.status_code == 405
    assert response.json()["error"]["status"] == 405


def test_injection_through_json_key_matches_nothing_and_tables_survive(
    client: httpx.Client,
) -> None:
    for key in [
        "a') OR 1=1 --",
        'a" OR 1=1 --',
        "$.a",
        "*",
        "a'; SELECT * FROM read_csv('/etc/passwd",
    ]:
        assert list_ids(client, filter=_condition(f"properties.{key}", "exists")) == []
        assert list_ids(client, filter=_condition(f"traits.{key}", "is", [key])) == []
    assert len(list_ids(client)) == 10


# --- fuzzing: random conditions are either answered or refused with a 400 ----------

_PATHS = [p for p, _ in iter_leaves()] + [
    "properties.plan",
    "properties.price",
    "traits.address.city",
    "properties.tags.0",
    "context",
    "nope",
    "properties.",
    "",
]
_VALUE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "1",
            "-5",
            "1.5",
            "1e10",
            "2025-10-19",
            "2025-10-19T12:00:00Z",
            "true",
            "960ae86c-fc6e-438a-ae03-838fa6c94946",
            "10.0.0.1",
            "",
            "'",
            '"',
            "\\",
            "%",
            "_",
            "NaN",
            "1e999",
            "99999999999999999999999",
        ]
    ),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
_CONDITION = st.fixed_dictionaries(
    {
        "property": st.one_of(st.sampled_from(_PATHS), st.text(max_size=20)),
        "operator": st.one_of(st.sampled_from(OPERATORS), st.text(max_size=10)),
    },
    optional={"values": st.lists(_VALUE, max_size=3)},
)
_FILTER = st.fixed_dictionaries(
    {"logical": st.sampled_from(["and", "or"]), "conditions": st.lists(_CONDITION, max_size=4)}
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    document=_FILTER,
    order=st.sampled_from(["timestamp", "userId", "kpid", "receivedAt", "type"]),
    ascending=st.booleans(),
    first=st.integers(min_value=0, max_value=12),
    properties=st.lists(st.sampled_from(TOP_LEVEL_COLUMNS), max_size=3),
)
def test_random_filters_never_fail_the_server(
    client: httpx.Client,
    document: dict,
    order: str,
    ascending: bool,
    first: int,
    properties: list[str],
) -> None:
    params = {
        "filter": json.dumps(document),
        "order": order,
        "ascending": str(ascending).lower(),
        "first": str(first),
        "limit": "5",
    }
    if properties:
        params["properties"] = ",".join(properties)
    response = client.get("/v1/events", params=params)
    assert response.status_code in (200, 400), response.text
    body = response.json()
    if response.status_code == 400:
        assert body["error"]["parameter"].startswith("filter")
    else:
        assert len(body["events"]) <= 5
