"""No key of one workspace reads anything of another, on any route.

A real server over a lake holding two workspaces' events (the same userIds in both,
interleaved in time, in partitions with and without a serving index) plus events of a
connection no workspace owns. Every route of the app (`app.routes`) must have a case in
`CASES`: a route without one fails `test_every_route_has_a_case`, so a new endpoint is
covered when it is added. Each case runs with every key kind of each workspace, and
every response is checked for the other workspace's message ids, anonymous ids,
connection ids and keys; the read cases also check that the answer is exactly the
caller's own events (nothing missing), including filters that try to escape
(`connectionId` conditions, `or`).
`tests/bigquery/test_workspace_isolation_bigquery.py` runs the read cases on BigQuery.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import make_event, running_server, write_lake
from fastapi import FastAPI
from seed_world import SeedWorld as World  # the same two-workspace world's shape
from starlette.routing import Route

from eventpipe.api.app import create_app
from eventpipe.api.limits import ServerBusy, ServingLimits
from eventpipe.api.query import EventQuery, LakeReader
from eventpipe.api.seeds import analytics
from eventpipe.catalog import Catalog
from eventpipe.listeners.routes import install_listener_routes
from eventpipe.listeners.store import LISTENERS_FILE, ListenerStore
from eventpipe.serving.index_build import index_lake

BASE = dt.datetime(2025, 10, 1, 0, 30, tzinfo=dt.UTC)
USERS = ("u1", "u2", "u3")
EVENTS_PER_CONNECTION = 18
ORPHAN_CONNECTION = 0  # events of a connection no workspace owns (the catalog's ids are >= 1)
KEY_KINDS = ("read", "write", "admin", "all", "event write")
LEGACY_KEY = "legacy-whole-lake-key"


@dataclass
class Side:
    """One workspace of the world: its catalog objects, keys and events."""

    name: str
    workspace: Any
    connections: list[int]
    keys: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def markers(self) -> list[str]:
        """Texts that must never appear in a response to another workspace's key."""
        ids = [r["messageId"] for r in self.rows] + [r["anonymousId"] for r in self.rows]
        return ids + list(self.keys.values()) + [self.workspace.project_key]

    def mentions(self, text: str) -> list[str]:
        """What of this workspace `text` shows."""
        found = [m for m in self.markers() if m in text]
        found += [str(c) for c in self.connections if re.search(rf"(?<!\d){c}(?!\d)", text)]
        return found


def build_world(lake: Path) -> World:
    """Two workspaces with two connections each, every key kind, and their events."""
    catalog = Catalog.in_lake(lake)
    sides: dict[str, Side] = {}
    for name in ("acme", "bolt"):
        ws = catalog.create_workspace(name.title())
        connections = [catalog.create_connection(ws.id, f"{name}-{i}").id for i in range(2)]
        keys = {
            "read": catalog.create_api_key(ws.id, ["read"]).secret,
            "write": catalog.create_api_key(ws.id, ["write"]).secret,
            "admin": catalog.create_api_key(ws.id, ["admin"]).secret,
            "all": catalog.create_api_key(ws.id, ["read", "write", "admin"]).secret,
            "event write": catalog.create_write_key(ws.id, connections[0]).secret,
        }
        sides[name] = Side(name, ws, connections, keys)
    catalog.create_workspace("Empty")  # a workspace without connections
    orphans: list[dict[str, Any]] = []
    step = 0
    for i in range(EVENTS_PER_CONNECTION):
        for c in range(2):
            for side in sides.values():  # interleaved in time: each page mixes both
                step += 1
                side.rows.append(
                    make_event(
                        messageId=f"{side.name}-m{step:04d}",
                        anonymousId=f"{side.name}-anon-{step:04d}",
                        userId=USERS[i % len(USERS)],
                        connectionId=side.connections[c],
                        timestamp=BASE + dt.timedelta(hours=step),
                        properties={"plan": ["free", "pro"][i % 2], "n": i},
                    )
                )
            if i % 6 == 0:
                step += 1
                orphans.append(
                    make_event(
                        messageId=f"orphan-m{step:04d}",
                        userId="u1",
                        connectionId=ORPHAN_CONNECTION,
                        timestamp=BASE + dt.timedelta(hours=step),
                    )
                )
    rows = [r for s in sides.values() for r in s.rows] + orphans
    write_lake(lake, rows)
    days = sorted({r["timestamp"].date() for r in rows})
    assert len(days) >= 3
    index_lake(str(lake), first=days[0], last=days[-2])  # the last day has no index
    return World(lake, catalog, sides, orphans)


# -- the read requests and their expected answers ----------------------------------------


def _filter(logical: str, *conditions: tuple[str, str, list[str] | None]) -> str:
    listed = []
    for prop, operator, values in conditions:
        condition: dict[str, Any] = {"property": prop, "operator": operator}
        if values is not None:
            condition["values"] = values
        listed.append(condition)
    return json.dumps({"logical": logical, "conditions": listed})


Expect = Callable[[dict[str, Any]], bool]
ReadCase = tuple[str, dict[str, Any], Expect]


def read_requests(world: World, mine: Side) -> list[ReadCase]:
    """(name, query parameters, which of the caller's rows match): listed in full, the
    answer must be exactly those rows."""
    other = world.other(mine.name)
    theirs, own = [str(c) for c in other.connections], [str(c) for c in mine.connections]
    orphan = str(ORPHAN_CONNECTION)
    day = sorted({r["timestamp"].date() for r in mine.rows})
    window = [f"{day[0]}T00:00:00Z", f"{day[1]}T23:59:59Z"]  # indexed partitions only
    return [
        ("everything", {}, lambda r: True),
        ("their connection", {"filter": _filter("and", ("connectionId", "is", theirs[:1]))}, None),
        (
            "their connection or a user",
            {"filter": _filter("or", ("connectionId", "is", theirs[:1]), ("userId", "is", ["u1"]))},
            lambda r: r["userId"] == "u1",
        ),
        (
            "every connection id",
            {"filter": _filter("and", ("connectionId", "is one of", [*theirs, *own, orphan]))},
            lambda r: True,
        ),
        (
            "not my first connection",
            {"filter": _filter("and", ("connectionId", "is not", own[:1]))},
            lambda r: r["connectionId"] == mine.connections[1],
        ),
        (
            "connection id above zero or anything",
            {
                "filter": _filter(
                    "or",
                    ("connectionId", "is greater than", ["-1"]),
                    ("messageId", "is not", ["x"]),
                )
            },
            lambda r: True,
        ),
        (
            "a user both workspaces have (index)",
            {"filter": _filter("and", ("userId", "is", ["u2"]))},
            lambda r: r["userId"] == "u2",
        ),
        (
            "a user in indexed days (index pages)",
            {
                "filter": _filter(
                    "and", ("userId", "is", ["u1"]), ("timestamp", "is between", window)
                )
            },
            lambda r: r["userId"] == "u1" and day[0] <= r["timestamp"].date() <= day[1],
        ),
        (
            "their anonymous id (index)",
            {"filter": _filter("and", ("anonymousId", "is", [other.rows[0]["anonymousId"]]))},
            None,
        ),
        (
            "a json property",
            {"filter": _filter("and", ("properties.plan", "is", ["pro"]))},
            lambda r: json.loads(r["properties"])["plan"] == "pro",
        ),
        ("by user, ascending", {"order": "userId", "ascending": "true"}, lambda r: True),
        ("by connection", {"order": "connectionId"}, lambda r: True),
    ]


def expected_ids(rows: list[dict[str, Any]], params: dict[str, Any], keep: Expect | None):
    """The messageIds the API must answer, in its order (every sort key ties on messageId)."""
    chosen = [r for r in rows if keep is not None and keep(r)]
    order, descending = params.get("order", "timestamp"), params.get("ascending") != "true"
    chosen.sort(key=lambda r: (r[order], r["messageId"]), reverse=descending)
    return [r["messageId"] for r in chosen]


def list_all(client: httpx.Client, params: dict[str, Any]) -> tuple[list[str], list]:
    """Every messageId of a request, paging by `first` (pages of 7), and the responses."""
    ids: list[str] = []
    responses = []
    while True:
        response = client.get("/v1/events", params={**params, "first": len(ids), "limit": 7})
        responses.append(response)
        assert response.status_code == 200, response.text
        page = [e["messageId"] for e in response.json()["events"]]
        ids += page
        if len(page) < 7:
            return ids, responses


# -- the cases: one per route ------------------------------------------------------------


@dataclass
class Caller:
    """A key of workspace `side` (kind `key`), and an HTTP client sending it."""

    side: Side
    key: str
    client: httpx.Client

    @property
    def reads(self) -> bool:
        return self.key in ("read", "all")


Case = Callable[[World, Caller], list[httpx.Response]]


def case_list_events(world: World, caller: Caller) -> list[httpx.Response]:
    if not caller.reads:
        response = caller.client.get("/v1/events", params={"filter": _filter("or")})
        assert response.status_code == 403, response.text
        return [response]
    seen = []
    for name, params, keep in read_requests(world, caller.side):
        ids, responses = list_all(caller.client, params)
        assert ids == expected_ids(caller.side.rows, params, keep), name
        seen += responses
    narrow = caller.client.get("/v1/events", params={"properties": "connectionId", "limit": 1000})
    assert {e["connectionId"] for e in narrow.json()["events"]} == set(caller.side.connections)
    return [*seen, narrow]


def case_event_schema(world: World, caller: Caller) -> list[httpx.Response]:
    response = caller.client.get("/v1/events/schema")
    assert response.status_code == (200 if caller.reads else 403), response.text
    return [response]


def case_session_events(world: World, caller: Caller) -> list[httpx.Response]:
    """Seed 001: the caller's project answers (its events carry no session: empty), the
    other workspace's project is a 404."""
    body = {"startTimestamp": 946684800000, "endTimestamp": 4102444800000, "limit": 200, "page": 1}
    responses = []
    for side, status in ((caller.side, 200), (world.other(caller.side.name), 404)):
        path = f"/public/{side.workspace.project_key}/sessions/1/events"
        response = caller.client.post(path, json=body)
        assert response.status_code == (status if caller.reads else 403), response.text
        responses.append(response)
    return responses


def case_export(world: World, caller: Caller) -> list[httpx.Response]:
    """Seed 002: the whole export is exactly the caller's events, in the export's order."""
    key = {"X-Api-Key": caller.side.keys[caller.key]}
    responses, ids, cursor = [], [], ""
    while True:
        params = {"pageSize": 7, **({"cursor": cursor} if cursor else {})}
        response = caller.client.get("/export/events", params=params, headers=key)
        responses.append(response)
        if not caller.reads:
            assert response.status_code == 403, response.text
            return responses
        assert response.status_code == 200, response.text
        ids += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["nextCursor"]
        if not cursor:
            break
    rows = sorted(caller.side.rows, key=lambda r: (r["timestamp"], r["messageId"]))
    assert ids == [r["messageId"] for r in rows]
    return responses


LISTENERS = "/v1/events/listeners"


def _admin(caller: Caller) -> bool:
    return caller.key in ("admin", "all")


def _theirs(world: World, caller: Caller) -> str:
    """A listener of the other workspace (made with its admin key)."""
    other = world.other(caller.side.name)
    with httpx.Client(base_url=str(caller.client.base_url), timeout=60) as client:
        response = client.post(
            LISTENERS, json={}, headers={"Authorization": f"Bearer {other.keys['admin']}"}
        )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def case_create_listener(world: World, caller: Caller) -> list[httpx.Response]:
    other = world.other(caller.side.name)
    mine = caller.client.post(LISTENERS, json={"connectionId": caller.side.connections[1]})
    theirs = caller.client.post(LISTENERS, json={"connectionId": other.connections[0]})
    assert mine.status_code == (200 if _admin(caller) else 403), mine.text
    assert theirs.status_code == (422 if _admin(caller) else 403), theirs.text
    return [mine, theirs]


def case_read_listener(world: World, caller: Caller) -> list[httpx.Response]:
    response = caller.client.get(f"{LISTENERS}/{_theirs(world, caller)}")
    assert response.status_code == (404 if _admin(caller) else 403), response.text
    if not _admin(caller):
        return [response]
    own = caller.client.get(f"{LISTENERS}/{caller.client.post(LISTENERS, json={}).json()['id']}")
    assert own.json() == {"events": [], "omitted": 0}
    return [response, own]


def case_delete_listener(world: World, caller: Caller) -> list[httpx.Response]:
    theirs = _theirs(world, caller)
    response = caller.client.delete(f"{LISTENERS}/{theirs}")
    assert response.status_code == (204 if _admin(caller) else 403), response.text
    owner = world.other(caller.side.name).keys["admin"]
    still = caller.client.get(f"{LISTENERS}/{theirs}", headers={"Authorization": f"Bearer {owner}"})
    assert still.status_code == 200  # another workspace's delete did nothing
    return [response]


def public_page(path: str) -> Case:
    """A route every client may read (the API's documentation)."""

    def case(world: World, caller: Caller) -> list[httpx.Response]:
        response = caller.client.get(path)
        assert response.status_code == 200
        return [response]

    return case


def seed003(path: str) -> Case:
    """Seed 003's search or count: exactly the caller's events, of a user both share too."""

    def case(world: World, caller: Caller) -> list[httpx.Response]:
        responses = []
        for user in (None, "u1"):
            body: dict[str, Any] = {"startDate": "2025-10-01", "endDate": "2025-10-31"}
            if user:
                body["filters"] = {"user": {"id": [user]}}
            response = caller.client.post(path, json=body)
            responses.append(response)
            if not caller.reads:
                assert response.status_code == 403, response.text
                continue
            mine = [r for r in caller.side.rows if user in (None, r["userId"])]
            if path == analytics.COUNT_PATH:
                assert response.json()["count"] == len(mine)
            else:
                ids = {r["id"] for r in response.json()["results"]}
                assert ids == {r["messageId"] for r in mine}
        return responses

    return case


CASES: dict[tuple[str, str], Case] = {
    ("POST", analytics.SEARCH_PATH): seed003(analytics.SEARCH_PATH),
    ("POST", analytics.COUNT_PATH): seed003(analytics.COUNT_PATH),
    ("GET", "/v1/events"): case_list_events,
    ("GET", "/v1/events/schema"): case_event_schema,
    ("POST", "/public/{projectKey}/sessions/{sessionId:path}/events"): case_session_events,
    ("GET", "/export/events"): case_export,
    ("GET", "/openapi.json"): public_page("/openapi.json"),
    ("GET", "/docs"): public_page("/docs"),
    ("GET", "/docs/oauth2-redirect"): public_page("/docs/oauth2-redirect"),
    ("GET", "/redoc"): public_page("/redoc"),
    ("POST", LISTENERS): case_create_listener,
    ("GET", LISTENERS + "/{id}"): case_read_listener,
    ("DELETE", LISTENERS + "/{id}"): case_delete_listener,
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route (HEAD, which Starlette adds to GET routes, aside)."""
    found = set()
    for route in app.routes:
        assert isinstance(route, Route), f"a route of an unknown kind: {route!r}"
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")
        found |= {(m, route.path) for m in methods}
    return found


# -- fixtures and tests ------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("two-workspaces"))


@pytest.fixture(scope="module")
def app(world: World) -> FastAPI:
    app = create_app(str(world.lake), [LEGACY_KEY], catalog=world.catalog)
    install_listener_routes(app, ListenerStore(world.lake / LISTENERS_FILE))  # as serve does
    setattr(app.state, analytics.CLOCK_STATE, lambda: BASE + dt.timedelta(days=30))
    return app


@pytest.fixture(scope="module")
def server_url(app: FastAPI) -> Iterator[str]:
    with running_server(app) as url:
        yield url


def check_isolated(world: World, url: str, side: str, key: str, case: Case) -> None:
    """Run `case` with `key` of workspace `side`; no response may show the other's data."""
    mine = world.sides[side]
    headers = {"Authorization": f"Bearer {mine.keys[key]}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        responses = case(world, Caller(mine, key, client))
    assert responses, "a case must return the responses it checked"
    for response in responses:
        assert response.status_code < 500, response.text
        leaked = world.other(side).mentions(response.text)
        assert not leaked, f"{response.request.url} showed the other workspace's {leaked[:5]}"
        orphans = [r["messageId"] for r in world.orphans if r["messageId"] in response.text]
        assert not orphans, f"{response.request.url} showed unowned events {orphans[:5]}"


def test_every_route_has_a_case(app: FastAPI) -> None:
    routes = app_routes(app)
    missing, stale = routes - set(CASES), set(CASES) - routes
    assert not missing, f"routes without an isolation case: add them to CASES: {sorted(missing)}"
    assert not stale, f"CASES of routes that are gone: {sorted(stale)}"


def test_every_endpoint_says_which_key_it_needs(app: FastAPI) -> None:
    spec = app.openapi()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            text = operation.get("description", "")
            assert "scope" in text or "no key" in text.lower(), (
                f"{method.upper()} {path}: say in its description which scope it needs "
                "(api.auth.scope_note) or that it needs no key"
            )


@pytest.mark.parametrize("key", KEY_KINDS)
@pytest.mark.parametrize("side", ["acme", "bolt"])
@pytest.mark.parametrize("route", sorted(CASES), ids=" ".join)
def test_no_key_sees_another_workspace(world, server_url, route, side, key) -> None:
    check_isolated(world, server_url, side, key, CASES[route])


def test_a_workspace_without_connections_reads_nothing(world, server_url) -> None:
    empty = world.catalog.workspace("empty")
    secret = world.catalog.create_api_key(empty.id, ["read"]).secret
    response = httpx.get(
        server_url + "/v1/events", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )
    assert response.status_code == 200 and response.json() == {"events": []}


def test_the_legacy_key_reads_the_whole_lake_and_only_reads(world, server_url) -> None:
    client = httpx.Client(
        base_url=server_url, headers={"Authorization": f"Bearer {LEGACY_KEY}"}, timeout=60
    )
    with client:
        ids, _ = list_all(client, {})
    rows = [r for s in world.sides.values() for r in s.rows] + world.orphans
    assert ids == expected_ids(rows, {}, lambda r: True)


def test_an_empty_connection_set_answers_without_querying(world) -> None:
    reader = LakeReader(world.lake, limits=ServingLimits("64MB", 0.01, 1))
    assert reader._slots.acquire(timeout=1)  # every query slot taken: a query would be a 503
    try:
        page = reader.list_events(EventQuery(connections=frozenset(), columns=("messageId",)))
        assert page.num_rows == 0 and page.column_names == ["messageId"]
        with pytest.raises(ServerBusy):
            reader.list_events(EventQuery(connections=frozenset(world.sides["acme"].connections)))
    finally:
        reader._slots.release()
