"""Seed 001, `POST /public/{projectKey}/sessions/{sessionId}/events`: the events of one
session over HTTP against a real server on a lake of two workspaces (the same session ids
in both; partitions with and without a serving index); the field mapping, paging, sorting,
filters, every argument check, the project key and workspace isolation. The same requests
on BigQuery: test_seeds_on_bigquery.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from seed_world import BASE, SESSIONS, START, client_fixture, world_fixture
from seed_world import session_body as body

LEGACY = "legacy-session-key"
NAMES = {"page": "$pageview", "screen": "$screen", "identify": "$identify",
         "group": "$groupidentify", "alias": "$create_alias"}  # fmt: skip


def ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def ask(client: httpx.Client, key: str | None, project: str, session: object, **fields: Any):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = f"/public/{project}/sessions/{session}/events"
    return client.post(url, json=body(**fields), headers=headers)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["event_id"] for e in response.json()["data"]["events"]]


def in_session(rows: list[dict], session: int) -> list[dict]:
    return [r for r in rows if r["context"]["session"]["id"] == session]


def newest_first(rows: list[dict]) -> list[str]:
    ordered = sorted(rows, key=lambda r: (r["timestamp"], r["messageId"]), reverse=True)
    return [r["messageId"] for r in ordered]


world = world_fixture("seed001")
client = client_fixture(LEGACY)


@pytest.mark.parametrize("side", ["acme", "bolt"])
@pytest.mark.parametrize("session", SESSIONS)
def test_a_session_is_its_workspaces_events_of_that_session(world, client, side, session):
    mine, other = world.sides[side], world.other(side)
    response = ask(client, mine.read_key, mine.workspace.project_key, session)
    expected = in_session(mine.rows, session)
    assert ids(response) == newest_first(expected)  # default: created_at, desc
    assert response.json()["data"]["total"] == len(expected)
    text = response.text
    assert not [r["messageId"] for r in other.rows + world.orphans if r["messageId"] in text]


def test_the_fields_follow_the_seed(world, client):
    mine = world.sides["acme"]
    response = ask(client, mine.read_key, mine.workspace.project_key, SESSIONS[1],
                   sortOrder="asc", columns=["receivedAt", "context", "type"])  # fmt: skip
    by_id = {r["messageId"]: r for r in mine.rows}
    events = response.json()["data"]["events"]
    assert {by_id[e["event_id"]]["type"] for e in events} >= set(NAMES) | {"track"}
    for event in events:
        row = by_id[event["event_id"]]
        assert list(event) == ["event_id", "$event_name", "created_at", "distinct_id",
                               "session_id", "properties", "context", "receivedAt", "type"]  # fmt: skip
        assert event["$event_name"] == NAMES.get(row["type"], row["event"])
        assert event["created_at"] == ms(row["timestamp"])
        assert event["distinct_id"] == (row["userId"] or row["anonymousId"])
        assert event["session_id"] == str(SESSIONS[1])
        assert event["properties"]["path"] == f"/p/{int(event['event_id'][-5:])}"
        assert event["context"]["session"]["id"] == str(SESSIONS[1])
        assert event["receivedAt"].endswith("Z") and event["type"] == row["type"]


def test_pages_cover_the_session_once_and_total_counts_all(world, client):
    mine = world.sides["bolt"]
    expected = newest_first(in_session(mine.rows, SESSIONS[0]))
    pages = []
    for page in range(1, 20):
        response = ask(client, mine.read_key, mine.workspace.project_key, SESSIONS[0],
                       limit=7, page=page)  # fmt: skip
        assert response.json()["data"]["total"] == len(expected)
        pages.append(ids(response))
        if not pages[-1]:
            break
    assert [i for p in pages for i in p] == expected


def test_sorting_by_another_column_and_ascending(world, client):
    mine = world.sides["acme"]
    rows = in_session(mine.rows, SESSIONS[0])
    response = ask(client, mine.read_key, mine.workspace.project_key, SESSIONS[0],
                   sortBy="event_id", sortOrder="asc")  # fmt: skip
    assert ids(response) == sorted(r["messageId"] for r in rows)
    response = ask(client, mine.read_key, mine.workspace.project_key, SESSIONS[0],
                   sortBy="created_at", sortOrder="ASC")  # fmt: skip
    assert ids(response) == newest_first(rows)[::-1]


def test_the_window_includes_both_ends(world, client):
    mine = world.sides["acme"]
    rows = in_session(mine.rows, SESSIONS[0])
    start, end = rows[3]["timestamp"], rows[20]["timestamp"]
    response = ask(client, mine.read_key, mine.workspace.project_key, SESSIONS[0],
                   startTimestamp=ms(start), endTimestamp=ms(end))  # fmt: skip
    assert ids(response) == newest_first([r for r in rows if start <= r["timestamp"] <= end])


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ([{"name": "plan", "operator": "is", "value": ["pro"], "isEvent": True}],
         lambda r: r["properties"]["plan"] == "pro"),
        ([{"name": "n", "operator": "greaterThan", "value": ["100"], "isEvent": True,
           "dataType": "integer"}], lambda r: r["properties"]["n"] > 100),
        ([{"name": "userId", "operator": "is", "value": ["user-1", "user-3"]}],
         lambda r: r["userId"] in ("user-1", "user-3")),
        ([{"name": "userId", "operator": "isNot", "value": ["user-1"]}],
         lambda r: r["userId"] not in (None, "user-1")),
        ([{"name": "path", "operator": "startsWith", "value": ["/p/1"], "isEvent": True},
          {"name": "type", "operator": "is", "value": ["track"]}],
         lambda r: r["properties"]["path"].startswith("/p/1") and r["type"] == "track"),
        ([{"name": "userId", "operator": "isUndefined", "value": []}],
         lambda r: r["userId"] is None),
        ([{"name": "timestamp", "operator": "is on or after", "dataType": "timestamp",
           "value": [str(ms(BASE + dt.timedelta(days=2)))]}],
         lambda r: r["timestamp"] >= BASE + dt.timedelta(days=2)),
    ],
)  # fmt: skip
def test_filters_narrow_the_session(world, client, filters, matches):
    mine = world.sides["bolt"]
    rows = [r for r in in_session(mine.rows, SESSIONS[1]) if matches(
        {**r, "properties": __import__("json").loads(r["properties"])})]  # fmt: skip
    assert rows
    response = ask(client, mine.read_key, mine.workspace.project_key, SESSIONS[1], filters=filters)
    assert ids(response) == newest_first(rows)
    assert response.json()["data"]["total"] == len(rows)


@pytest.mark.parametrize("session", ["abc", "12a", "1.5", "-", "9" * 30, "x/y"])
def test_a_session_id_that_is_not_an_integer_matches_nothing(world, client, session):
    mine = world.sides["acme"]
    response = ask(client, mine.read_key, mine.workspace.project_key, session)
    assert response.status_code == 200 and response.json() == {"data": {"total": 0, "events": []}}


def test_the_project_key_must_be_the_keys_workspaces(world, client):
    acme, bolt = world.sides["acme"], world.sides["bolt"]
    for key, project in ((acme.read_key, bolt.workspace.project_key),
                         (acme.read_key, "no-such-project"), (LEGACY, "no-such-project")):  # fmt: skip
        response = ask(client, key, project, SESSIONS[0])
        assert response.status_code == 404, response.text
        assert response.json()["error"]["parameter"] == "projectKey"
        assert bolt.rows[0]["messageId"][:4] not in response.text
    # A whole-lake key reads the project's workspace only.
    response = ask(client, LEGACY, bolt.workspace.project_key, SESSIONS[0])
    assert ids(response) == newest_first(in_session(bolt.rows, SESSIONS[0]))


def test_keys_are_checked(world, client):
    acme = world.sides["acme"]
    assert ask(client, None, acme.workspace.project_key, SESSIONS[0]).status_code == 401
    assert ask(client, "epk_wrong", acme.workspace.project_key, SESSIONS[0]).status_code == 401
    assert ask(client, acme.write_key, acme.workspace.project_key, SESSIONS[0]).status_code == 403


FILTER = {"name": "plan", "operator": "is", "value": ["pro"], "isEvent": True}


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"startTimestamp": None}, "startTimestamp"),
        ({"startTimestamp": 946684799999}, "startTimestamp"),
        ({"startTimestamp": "1623440000000"}, "startTimestamp"),
        ({"startTimestamp": 1.5e12}, "startTimestamp"),
        ({"endTimestamp": None}, "endTimestamp"),
        ({"endTimestamp": START}, "endTimestamp"),
        ({"endTimestamp": START - 1}, "endTimestamp"),
        ({"endTimestamp": 10**16}, "endTimestamp"),
        ({"limit": None}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": True}, "limit"),
        ({"page": None}, "page"),
        ({"page": 0}, "page"),
        ({"page": 10**12}, "page"),
        ({"sortBy": "nope"}, "sortBy"),
        ({"sortBy": 3}, "sortBy"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"filters": "plan"}, "filters"),
        ({"filters": [{**FILTER, "name": ""}]}, "filters[0].name"),
        ({"filters": [{**FILTER, "name": "x" * 257}]}, "filters[0].name"),
        ({"filters": [{**FILTER, "value": ["v"] * 11}]}, "filters[0].value"),
        ({"filters": [{**FILTER, "value": ["v" * 257]}]}, "filters[0].value[0]"),
        ({"filters": [{**FILTER, "dataType": "date"}]}, "filters[0].dataType"),
        ({"filters": [{**FILTER, "isEvent": "yes"}]}, "filters[0].isEvent"),
        ({"filters": [FILTER, {**FILTER, "operator": "sounds like"}]}, "filters[1].operator"),
        ({"filters": [{**FILTER, "name": "no such column", "isEvent": False}]}, "filters[0].name"),
        ({"filters": [{**FILTER, "operator": "contains", "value": ["a", "b"]}]},
         "filters[0].value"),
        ({"filters": [{**FILTER, "dataType": "integer", "value": ["x"]}]}, "filters[0].value[0]"),
        ({"filters": [{**FILTER, "dataType": "timestamp", "value": ["x"]}]},
         "filters[0].value[0]"),
        ({"filters": [{"name": "timestamp", "operator": "is after", "value": ["soon"]}]},
         "filters[0].value[0]"),
        ({"columns": ["nope"]}, "columns[0]"),
        ({"columns": "context"}, "columns"),
    ],
)  # fmt: skip
def test_every_argument_check_names_its_parameter(world, client, fields, parameter):
    acme = world.sides["acme"]
    payload = {k: v for k, v in body(**fields).items() if v is not None}
    response = client.post(f"/public/{acme.workspace.project_key}/sessions/{SESSIONS[0]}/events",
                           json=payload, headers={"Authorization": f"Bearer {acme.read_key}"})  # fmt: skip
    assert response.status_code == 400, response.text
    assert response.json()["error"]["parameter"] == parameter, response.json()


@pytest.mark.parametrize("session", ["", "1" * 257])
def test_an_empty_or_long_session_id_is_a_400(world, client, session):
    acme = world.sides["acme"]
    response = ask(client, acme.read_key, acme.workspace.project_key, session)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["parameter"] == "sessionId"


def test_a_body_that_is_not_json_is_a_400(world, client):
    acme = world.sides["acme"]
    response = client.post(f"/public/{acme.workspace.project_key}/sessions/1/events",
                           content=b"{not json", headers={"Authorization": f"Bearer {acme.read_key}",
                                                          "content-type": "application/json"})  # fmt: skip
    assert response.status_code == 400


def test_a_body_over_64_kib_is_refused(world, client):
    acme = world.sides["acme"]
    response = ask(client, acme.read_key, acme.workspace.project_key, SESSIONS[0],
                   padding="x" * 70_000)  # fmt: skip
    assert response.status_code == 413 and response.json()["error"]["parameter"] == "body"
