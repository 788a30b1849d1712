"""GET /v1/events: order, ascending, first/limit paging, properties, on the canonical lake."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from api_support import CANONICAL_EVENTS, list_ids

from eventpipe.api.query import ORDER_COLUMNS

ALL = ["e10", "e09", "e08", "e07", "e06", "e05", "e04", "e03", "e02", "e01"]


def _expected_order(order: str, ascending: bool) -> list[str]:
    """The canonical events sorted as the API documents: nulls last, ties by messageId."""
    rows = CANONICAL_EVENTS
    present = [r for r in rows if r[order] is not None]
    nulls = [r for r in rows if r[order] is None]
    present.sort(key=lambda r: (r[order], r["messageId"]), reverse=not ascending)
    nulls.sort(key=lambda r: r["messageId"], reverse=not ascending)
    return [r["messageId"] for r in present + nulls]


def test_default_is_newest_first_with_messageid_tie_break(client: httpx.Client) -> None:
    assert list_ids(client) == ALL


def test_there_are_15_order_names() -> None:
    assert len(ORDER_COLUMNS) == 15


@pytest.mark.parametrize("ascending", [False, True])
@pytest.mark.parametrize("order", ORDER_COLUMNS)
def test_every_order(client: httpx.Client, order: str, ascending: bool) -> None:
    got = list_ids(client, order=order, ascending=str(ascending).lower())
    assert got == _expected_order(order, ascending)


@pytest.mark.parametrize("order", ["timestamp", "userId", "event", "receivedAt"])
@pytest.mark.parametrize("ascending", ["false", "true"])
@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7])
def test_paging_never_repeats_or_skips(
    client: httpx.Client, order: str, ascending: str, limit: int
) -> None:
    everything = list_ids(client, order=order, ascending=ascending, limit=1000)
    pages: list[str] = []
    for first in range(0, 12, limit):
        pages += list_ids(client, order=order, ascending=ascending, first=first, limit=limit)
    assert pages == everything
    assert len(everything) == 10


@pytest.mark.parametrize("first", range(0, 12))
def test_first_with_a_filter_across_partitions(client: httpx.Client, first: int) -> None:
    condition = {"property": "type", "operator": "is not", "values": ["group"]}
    flt = {"logical": "and", "conditions": [condition]}
    everything = list_ids(client, filter=flt)
    assert list_ids(client, filter=flt, first=first, limit=3) == everything[first : first + 3]


def test_limit_bounds(client: httpx.Client) -> None:
    assert list_ids(client, limit=1) == ["e10"]
    assert list_ids(client, limit=1000) == ALL
    assert list_ids(client, first=10) == []
    assert list_ids(client, first=1_000_000_000) == []


def test_properties_selects_columns(client: httpx.Client) -> None:
    response = client.get("/v1/events", params={"properties": "userId,messageId", "limit": 3})
    assert response.json() == {
        "events": [
            {"messageId": "e10"},
            {"messageId": "e09", "userId": "u4"},
            {"messageId": "e08", "userId": "u4"},
        ]
    }


def test_properties_may_repeat_and_be_spaced(client: httpx.Client) -> None:
    response = client.get(
        "/v1/events", params=[("properties", "type, traits"), ("properties", "type"), ("limit", 1)]
    )
    assert response.json() == {
        "events": [{"traits": {"address": {"city": "Rome"}}, "type": "track"}]
    }


def test_traits_always_present_when_selected(client: httpx.Client) -> None:
    events = client.get("/v1/events", params={"properties": "traits"}).json()["events"]
    assert len(events) == 10 and all(isinstance(e["traits"], dict) for e in events)


def test_seed_example_shape(client: httpx.Client) -> None:
    """The seed's response example, for the event imported from it (e07)."""
    params = {
        "properties": "kpid,connectionId,anonymousId,context,event,messageId,properties,"
        "receivedAt,sentAt,originalTimestamp,timestamp,type,userId",
        "filter": '{"logical":"and","conditions":[{"property":"messageId","operator":"is",'
        '"values":["e07"]}]}',
    }
    (event,) = client.get("/v1/events", params=params).json()["events"]
    assert event == {
        "kpid": "960ae86c-fc6e-438a-ae03-838fa6c94946",
        "connectionId": 1371036433,
        "anonymousId": CANONICAL_EVENTS[6]["anonymousId"],
        "context": {"ip": "10.0.0.1", "session": {"id": "1766272512048"}},
        "event": "Workout Completed",
        "messageId": "e07",
        "properties": {
            "workout_type": "Cardio",
            "duration_minutes": 45,
            "calories_burned": 380,
            "device": "Smartwatch",
        },
        "receivedAt": "2025-10-20T16:15:24.010Z",
        "sentAt": "2025-10-20T16:15:24.010Z",
        "originalTimestamp": "2025-10-20T16:15:24.010Z",
        "timestamp": "2025-10-20T16:15:24.010Z",
        "type": "track",
        "userId": "720572415",
    }


def test_optional_fields_absent_when_null(client: httpx.Client) -> None:
    events: dict[str, dict[str, Any]] = {
        e["messageId"]: e for e in client.get("/v1/events").json()["events"]
    }
    assert set(events["e09"]) == {
        "connectionId",
        "anonymousId",
        "messageId",
        "receivedAt",
        "sentAt",
        "originalTimestamp",
        "timestamp",
        "traits",
        "type",
        "previousId",
        "userId",
    }
    assert events["e06"]["context"] == {
        "browser": {"name": "Other", "other": "Lynx"},
        "locale": "",
    }
    assert events["e02"]["properties"]["nothing"] is None  # a JSON null inside json stays
    assert events["e03"]["context"]["screen"] == {"width": 390, "height": 844, "density": 3.25}


def test_datetimes_are_utc_milliseconds_z(client: httpx.Client) -> None:
    for event in client.get("/v1/events").json()["events"]:
        for name in ("receivedAt", "sentAt", "originalTimestamp", "timestamp"):
            value = event[name]
            assert value.endswith("Z") and len(value) == len("2025-10-20T16:15:24.010Z")
            dt.datetime.fromisoformat(value)
