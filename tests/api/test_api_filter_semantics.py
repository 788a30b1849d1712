"""Every operator on every type, over a real server: which canonical events match.

Every test runs against both backends, each with its SQL dialect: the lake (DuckDB over
real Parquet) and a BigQuery table of the emulator; both must give the same answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import API_KEY, CANONICAL_EVENTS, list_ids, make_event, running_server, write_lake
from bq_emulator import bigquery_table

from eventpipe.api.app import create_app
from eventpipe.api.bigquery_backend import BigQueryReader
from eventpipe.api.filters import INLINE_VALUES

ALL = ["e10", "e09", "e08", "e07", "e06", "e05", "e04", "e03", "e02", "e01"]


def _but(*excluded: str) -> list[str]:
    return [e for e in ALL if e not in excluded]


BACKENDS = ("lake", "bigquery")


@contextlib.contextmanager
def serving(request: pytest.FixtureRequest, backend: str, lake: Path) -> Iterator[httpx.Client]:
    """A client of a real server over the events of `lake`, read by `backend`."""
    reader = None
    with contextlib.ExitStack() as stack:
        if backend == "bigquery":
            endpoint = request.getfixturevalue("bq_endpoint")
            client = request.getfixturevalue("bq_client")
            table = stack.enter_context(bigquery_table(client, endpoint, lake))
            reader = BigQueryReader(table, endpoint)
        url = stack.enter_context(running_server(create_app(str(lake), [API_KEY], reader=reader)))
        headers = {"Authorization": f"Bearer {API_KEY}"}
        yield stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=60))


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def client(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A client of the canonical events, on each backend."""
    lake = write_lake(tmp_path_factory.mktemp("canonical"), CANONICAL_EVENTS)
    with serving(request, backend, lake) as c:
        yield c


# (property, operator, values, expected messageIds in default order: newest first)
CASES: list[tuple[str, str, list[str] | None, list[str]]] = [
    # strings
    ("userId", "is", ["u1"], ["e03", "e01"]),
    ("userId", "is not", ["u1"], ["e09", "e08", "e07", "e06", "e04", "e02"]),
    ("userId", "is one of", ["u1", "u3"], ["e04", "e03", "e01"]),
    ("userId", "is not one of", ["u1", "u2"], ["e09", "e08", "e07", "e04"]),
    ("userId", "is null", None, ["e10", "e05"]),
    ("userId", "is not null", None, _but("e10", "e05")),
    ("userId", "contains", ["u"], ["e09", "e08", "e06", "e04", "e03", "e02", "e01"]),
    ("userId", "does not contain", ["u"], ["e07"]),
    ("userId", "starts with", ["72"], ["e07"]),
    ("userId", "starts with", ["1"], []),
    ("userId", "ends with", ["2"], ["e06", "e02"]),
    ("userId", "is greater than", ["u3"], ["e09", "e08"]),
    ("userId", "is greater than or equal to", ["u3"], ["e09", "e08", "e04"]),
    ("userId", "is less than", ["u2"], ["e07", "e03", "e01"]),
    ("userId", "is less than or equal to", ["u1"], ["e07", "e03", "e01"]),
    ("userId", "is between", ["u2", "u3"], ["e06", "e04", "e02"]),
    ("userId", "is not between", ["u2", "u3"], ["e09", "e08", "e07", "e03", "e01"]),
    ("userId", "is between", ["u3", "u2"], []),
    ("userId", "is", ["U1"], []),
    ("userId", "contains", ["%"], []),
    ("userId", "starts with", ["_"], []),
    ("context.locale", "is empty", None, ["e06"]),
    ("context.locale", "is not empty", None, ["e01"]),
    ("context.browser.name", "is", ["Chrome"], ["e02"]),
    ("context.browser.other", "is", ["Lynx"], ["e06"]),
    ("context.os.other", "is not null", None, ["e05"]),
    ("type", "is one of", ["page", "screen"], ["e08", "e03"]),
    ("event", "is null", None, ["e09", "e08", "e05", "e04", "e03"]),
    # ints, floats, decimals
    ("connectionId", "is", ["1371036433"], ALL),
    ("connectionId", "is less than", ["5"], []),
    ("connectionId", "is not one of", ["1", "2"], ALL),
    ("context.session.id", "is", ["7"], ["e03", "e02"]),
    ("context.session.id", "is", ["1766272512048"], ["e07", "e01"]),
    ("context.session.id", "is greater than", ["7"], ["e07", "e01"]),
    ("context.session.id", "is not", ["7"], ["e07", "e01"]),
    ("context.session.id", "is null", None, ["e10", "e09", "e08", "e06", "e05", "e04"]),
    ("context.screen.width", "is less than", ["1000"], ["e03"]),
    ("context.screen.width", "is between", ["390", "3024"], ["e03", "e01"]),
    ("context.screen.height", "is not between", ["0", "900"], ["e01"]),
    ("context.screen.density", "is", ["2"], ["e01"]),
    ("context.screen.density", "is", ["3.25"], ["e03"]),
    ("context.screen.density", "is greater than", ["2.5"], ["e03"]),
    ("context.screen.density", "is one of", ["1", "2.00"], ["e01"]),
    ("context.location.latitude", "is", ["34.05"], ["e01"]),
    ("context.location.longitude", "is less than or equal to", ["-1e2"], ["e01"]),
    ("context.location.speed", "is greater than or equal to", ["0.5"], ["e01"]),
    # booleans
    ("context.device.adTrackingEnabled", "is true", None, ["e01"]),
    ("context.device.adTrackingEnabled", "is false", None, []),
    ("context.network.bluetooth", "is false", None, ["e01"]),
    ("context.session.start", "is false", None, ["e03"]),
    ("context.session.start", "is true", None, ["e01"]),
    ("context.session.start", "is null", None, _but("e03", "e01")),
    # uuid, ip
    ("kpid", "is", ["960AE86C-FC6E-438A-AE03-838FA6C94946"], ["e07"]),
    ("kpid", "is not", ["960ae86c-fc6e-438a-ae03-838fa6c94946"], ["e01"]),
    ("kpid", "is null", None, _but("e07", "e01")),
    ("context.ip", "is", ["172.91.24.57"], ["e01"]),
    ("context.ip", "is", ["2001:0db8:0000::0001"], ["e03"]),
    ("context.ip", "is not", ["10.0.0.1"], ["e03", "e01"]),
    # datetimes
    ("timestamp", "is", ["2025-10-19T12:00:00Z"], ["e05", "e04"]),
    ("timestamp", "is", ["2025-10-19T14:00:00+02:00"], ["e05", "e04"]),
    ("timestamp", "is", ["2025-10-18T09:30:00.25Z"], ["e02"]),
    ("timestamp", "is not", ["2025-10-19T12:00:00Z"], _but("e05", "e04")),
    ("timestamp", "is before", ["2025-10-19"], ["e02", "e01"]),
    ("timestamp", "is on or before", ["2025-10-19T00:00:00Z"], ["e03", "e02", "e01"]),
    ("timestamp", "is after", ["2025-10-20T17:00:00Z"], ["e10"]),
    ("timestamp", "is on or after", ["2025-10-20T17:00:00.000Z"], ["e10", "e09", "e08"]),
    (
        "timestamp",
        "is between",
        ["2025-10-19", "2025-10-19T23:59:59.999Z"],
        ["e06", "e05", "e04", "e03"],
    ),
    (
        "timestamp",
        "is not between",
        ["2025-10-19", "2025-10-19T23:59:59.999Z"],
        ["e10", "e09", "e08", "e07", "e02", "e01"],
    ),
    ("timestamp", "is between", ["2025-10-20", "2025-10-18"], []),
    ("receivedAt", "is", ["2025-10-20T16:15:24.010Z"], ALL),
    ("sentAt", "is after", ["2025-10-21"], []),
    # json paths: compared with the JSON type of the stored value
    ("properties.plan", "is", ["pro"], ["e01"]),
    ("properties.plan", "is not", ["pro"], ["e06", "e02"]),
    ("properties.plan", "is not null", None, ["e06", "e02", "e01"]),
    ("properties.plan", "contains", ["ro"], ["e06", "e01"]),
    ("properties.plan", "does not contain", ["ro"], ["e02"]),
    ("properties.plan", "starts with", ["P"], ["e06"]),
    ("properties.plan", "ends with", ["ee"], ["e02"]),
    ("properties.plan", "is one of", ["free", "Pro"], ["e06", "e02"]),
    ("properties.plan", "is not one of", ["free", "Pro"], ["e01"]),
    ("properties.price", "is", ["10"], ["e02", "e01"]),
    ("properties.price", "is", ["10.0"], ["e01"]),
    ("properties.price", "is greater than", ["9"], ["e06", "e03", "e01"]),
    ("properties.price", "is less than", ["0"], ["e10"]),
    # e02's price is the JSON string "10": compared as text, "10" <= "9.5"
    ("properties.price", "is less than or equal to", ["9.5"], ["e10", "e03", "e02"]),
    ("properties.price", "is greater than or equal to", ["100"], ["e06"]),
    ("properties.price", "is between", ["9", "10"], ["e03", "e01"]),
    ("properties.price", "is not between", ["9", "10"], ["e10", "e06", "e02"]),
    ("properties.price", "is not", ["10"], ["e10", "e06", "e03"]),
    # one bound not a number: only JSON strings compare (as text)
    ("properties.price", "is not between", ["a", "5"], ["e02"]),
    ("properties.price", "is not between", ["5", "z"], ["e02"]),
    ("properties.price", "is between", ["0", "z"], ["e02"]),
    ("properties.n", "is", ["5"], ["e10", "e08"]),
    ("properties.flag", "is true", None, ["e01"]),
    ("properties.flag", "is false", None, ["e02"]),
    ("properties.flag", "is", ["true"], ["e01"]),
    ("properties.flag", "is", ["false"], ["e02"]),
    ("properties.nothing", "is null", None, ALL),
    ("properties.nothing", "is not null", None, []),
    ("properties.nothing", "exists", None, ["e02"]),
    ("properties.nothing", "does not exist", None, _but("e02")),
    ("properties.nothing", "is not", ["x"], []),
    ("properties.missing", "is not one of", ["x"], []),
    ("properties.missing", "does not contain", ["x"], []),
    ("properties.empty", "is empty", None, ["e02"]),
    ("properties.empty", "is not empty", None, []),
    ("properties.tags", "is empty", None, ["e03"]),
    ("properties.tags", "is not empty", None, ["e01"]),
    ("properties.obj", "is empty", None, ["e03"]),
    ("properties.tags.0", "is", ["a"], ["e01"]),
    ("properties.address.city", "is", ["Rome"], ["e01"]),
    ("properties.address", "exists", None, ["e01"]),
    ("properties.when", "is after", ["2025-09-30"], ["e01"]),
    ("properties.when", "is on or before", ["2025-10-01T00:00:00Z"], ["e01"]),
    ("properties.when", "is before", ["2025-10-01T00:00:00Z"], []),
    ("properties.plan", "is after", ["2025-09-30"], []),
    ("properties", "is null", None, ["e09", "e05", "e04"]),
    ("properties", "exists", None, _but("e09", "e05", "e04")),
    ("traits", "is empty", None, ["e09", "e08", "e07", "e06", "e05", "e03", "e02"]),
    ("traits", "is not empty", None, ["e10", "e04", "e01"]),
    ("traits", "is null", None, []),
    ("traits.address.city", "is", ["Rome"], ["e10"]),
    ("traits.age", "is greater than or equal to", ["30"], ["e01"]),
    ("traits.plan", "is", ["pro"], ["e04"]),
    # injection attempts in json keys and values: bound as parameters, so they just miss
    ("properties.a'); DROP TABLE t; --", "exists", None, []),
    ('properties.x"]', "is", ["1"], []),
    ("userId", "is", ["' OR '1'='1"], []),
    ("userId", "is one of", ["u1' --", "u1"], ["e03", "e01"]),
    ("properties.plan", "is", ["pro' OR 1=1 --"], []),
]


@pytest.mark.parametrize(("prop", "operator", "values", "expected"), CASES)
def test_condition_matches(
    client: httpx.Client, prop: str, operator: str, values: list[str] | None, expected: list[str]
) -> None:
    condition: dict = {"property": prop, "operator": operator}
    if values is not None:
        condition["values"] = values
    got = list_ids(client, filter={"logical": "and", "conditions": [condition]})
    assert got == expected


LONG_LIST_CASES = [c for c in CASES if c[1] in ("is one of", "is not one of")]


@pytest.mark.parametrize(("prop", "operator", "values", "expected"), LONG_LIST_CASES)
def test_long_one_of_lists_match_as_short_ones(
    client: httpx.Client, prop: str, operator: str, values: list[str], expected: list[str]
) -> None:
    """Past INLINE_VALUES values, `is one of` is a semi-join on a list parameter: the same
    rows match (the padding values, negative integers, match no canonical event)."""
    padded = values + [str(-7000 - i) for i in range(INLINE_VALUES + 1)]
    condition = {"property": prop, "operator": operator, "values": padded}
    assert list_ids(client, filter={"logical": "and", "conditions": [condition]}) == expected


def test_and_combines_conditions(client: httpx.Client) -> None:
    conditions = [
        {"property": "userId", "operator": "is", "values": ["u2"]},
        {"property": "event", "operator": "is", "values": ["Product Purchased"]},
        {"property": "timestamp", "operator": "is after", "values": ["2025-10-19"]},
    ]
    assert list_ids(client, filter={"logical": "and", "conditions": conditions}) == ["e06"]


def test_or_combines_conditions(client: httpx.Client) -> None:
    conditions = [
        {"property": "userId", "operator": "is", "values": ["u3"]},
        {"property": "properties.plan", "operator": "is", "values": ["free"]},
        {"property": "timestamp", "operator": "is after", "values": ["2025-10-20T17:30:00Z"]},
    ]
    got = list_ids(client, filter={"logical": "or", "conditions": conditions})
    assert got == ["e10", "e04", "e02"]


def test_empty_conditions_match_everything(client: httpx.Client) -> None:
    assert list_ids(client, filter={"logical": "or", "conditions": []}) == ALL


def test_seed_example_filter_escaped_in_query_string(client: httpx.Client) -> None:
    escaped = (
        "%7b%22logical%22%3a%22and%22%2c%22conditions%22%3a%5b%7b%22property%22%3a%22kpid%22%2c"
        "%22operator%22%3a%22is%22%2c%22values%22%3a%5b%22960ae86c-fc6e-438a-ae03-838fa6c94946"
        "%22%5d%7d%5d%7d"
    )
    response = client.get(f"/v1/events?filter={escaped}")
    assert response.status_code == 200
    assert [e["messageId"] for e in response.json()["events"]] == ["e07"]


ESCAPED_EVENTS = [
    make_event(
        messageId="j1",
        properties=r'{"u": "caf\u00e9", "s": "a\/b", "q": "say \"hi\"", "t": "tab\there", "n": 10.0}',
    ),
    make_event(messageId="j2", properties={"u": "cafe"}),
]
ESCAPE_CASES = [
    ("properties.u", "is", ["café"], ["j1"]),
    ("properties.u", "is one of", ["café", "cafe"], ["j2", "j1"]),
    ("properties.u", "is not", ["café"], ["j2"]),
    ("properties.s", "is", ["a/b"], ["j1"]),
    ("properties.q", "is", ['say "hi"'], ["j1"]),
    ("properties.q", "is one of", ['say "hi"', "x"], ["j1"]),
    ("properties.t", "is", ["tab\there"], ["j1"]),
    ("properties.n", "is", ["10"], ["j1"]),
    ("properties.n", "is one of", ["1e1", "x"], ["j1"]),
]


def test_json_strings_compare_by_value_not_by_spelling(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    """Escapes in the stored JSON (\\u00e9, \\/) or in the operand do not change equality."""
    lake = write_lake(tmp_path, ESCAPED_EVENTS)
    with serving(request, backend, lake) as client:
        for prop, operator, values, expected in ESCAPE_CASES:
            flt = {
                "logical": "and",
                "conditions": [{"property": prop, "operator": operator, "values": values}],
            }
            assert list_ids(client, filter=flt) == expected, (prop, operator, values)
