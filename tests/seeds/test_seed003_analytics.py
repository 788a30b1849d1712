"""Seed 003 end to end over HTTP: POST /analytics/api/v1/events and /events/count against a
lake of two workspaces (catalog keys), and the same answers from the BigQuery emulator."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import make_event, running_server, write_lake
from bq_emulator import bigquery_table

from eventpipe.api.app import create_app
from eventpipe.api.bigquery_backend import BigQueryReader
from eventpipe.api.seeds import analytics
from eventpipe.api.seeds.analytics import CLOCK_STATE, COUNT_PATH, SEARCH_PATH
from eventpipe.catalog import Catalog
from eventpipe.io.lake import EVENTS
from eventpipe.io.lake_sink import write_visible
from eventpipe.schemas import arrow_schema

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
START = dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
NAMES = ("khub.search", "document.display", "khub.search", "page", "identify")
USERS = (
    (
        "u-a",
        {"realm": ["internal", "Keycloak"], "groups": ["ft:administrator"], "roles": ["ADMIN"]},
    ),
    ("u-b", {"realm": "sso", "groups": ["TechWriter", "nda_basic"], "roles": ["FEEDBACK_USER"]}),
    (None, None),
)
CONTEXT = {
    "app": {"name": "ft/turnkey-portal", "version": "4.3.32"},
    "ip": "10.60.1.38",
    "locale": "en-US",
    "session": {"id": 1714487636947, "start": False},
    "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/124.0.0.0",
}


@dataclass
class Side:
    key: str
    connections: list[int]
    rows: list[dict[str, Any]]


@dataclass
class World:
    lake: Path
    catalog: Catalog
    sides: dict[str, Side]
    orphans: list[dict[str, Any]]


def _rows(side: str, connections: list[int], offset: int) -> list[dict[str, Any]]:
    """Events of one workspace every ~5 hours over nine days, of every name and user."""
    rows = []
    for i in range(44):
        name = NAMES[i % len(NAMES)]
        user_id, user = USERS[i % len(USERS)]
        kind = name if name in ("page", "identify") else "track"
        properties: dict[str, Any] = {"searchQuery": {"terms": f"q{i}"}, "n": i}
        if user is not None:
            properties["user"] = user
        if i % 4 == 0:
            properties |= {"contentLocale": "fr-FR", "offline": i % 8 == 0, "tenantId": "doc"}
        rows.append(
            make_event(
                messageId=f"{side}-{i:03d}",
                anonymousId=f"{side}-anon-{i:03d}",
                connectionId=connections[i % 2],
                timestamp=START + dt.timedelta(hours=5 * i, minutes=offset, milliseconds=i),
                type=kind,
                event=name if kind == "track" else None,
                name="Home" if kind == "page" else None,
                userId=user_id,
                properties=properties if kind != "identify" else None,
                traits={"email": "x@example.com"} if kind == "identify" else {},
                context=CONTEXT if i % 3 else None,
            )
        )
    return rows


def build_world(lake: Path) -> World:
    """Two workspaces of two connections each (interleaved in time) and a connection no
    workspace owns; days 1-4 written through the lake transaction (count summaries),
    the rest as plain files (scanned)."""
    catalog = Catalog.in_lake(lake)
    sides = {}
    for offset, name in enumerate(("acme", "bolt")):
        ws = catalog.create_workspace(name.title())
        connections = [catalog.create_connection(ws.id, f"{name}-{i}").id for i in range(2)]
        key = catalog.create_api_key(ws.id, ["read"]).secret
        sides[name] = Side(key, connections, _rows(name, connections, offset))
    orphans = _rows("orphan", [0, 0], 2)
    rows = [r for s in sides.values() for r in s.rows] + orphans
    early = [r for r in rows if r["timestamp"] < START + dt.timedelta(days=4)]
    for day, group in itertools.groupby(
        sorted(early, key=lambda r: r["timestamp"]), key=lambda r: r["timestamp"].date()
    ):
        table = _table(list(group))
        write_visible(str(lake), f"t-{day}", [(EVENTS, f"date={day}/part-t.parquet", table)])
    write_lake(lake, [r for r in rows if r not in early])
    return World(lake, catalog, sides, orphans)


def _table(rows: list[dict[str, Any]]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=arrow_schema())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("seed003"))


@pytest.fixture(scope="module")
def lake_url(world: World) -> Iterator[str]:
    app = create_app(str(world.lake), None, catalog=world.catalog)
    setattr(app.state, CLOCK_STATE, lambda: NOW)
    with running_server(app) as url:
        yield url


def client(url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def search(url: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    with client(url, key) as c:
        response = c.post(SEARCH_PATH, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def count(url: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    with client(url, key) as c:
        response = c.post(COUNT_PATH, json=body)
    assert response.status_code == 200, response.text
    return response.json()


# -- the reference: what each request must answer, computed from the rows ----------------


def _date(text: str) -> dt.datetime:
    for form in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, form).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ValueError(text)


def _name(row: dict[str, Any]) -> str:
    return row["event"] if row["type"] == "track" else row["type"]


def _user(row: dict[str, Any]) -> dict[str, Any]:
    import json

    properties = json.loads(row["properties"]) if row["properties"] else {}
    return properties.get("user") or {}


def _member(stored: Any, wanted: list[str]) -> bool:
    values = stored if isinstance(stored, list) else [stored]
    return any(v in wanted for v in values if isinstance(v, str))


def expected(rows: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a request matches, in its order."""
    start = _date(body["startDate"])
    end = _date(body["endDate"]) if "endDate" in body else NOW
    filters = body.get("filters", {})
    user = filters.get("user", {})
    keep = []
    for r in rows:
        if not start <= r["timestamp"] < end:
            continue
        if filters.get("name") and _name(r) not in filters["name"]:
            continue
        if user.get("id") and r["userId"] not in user["id"]:
            continue
        stored = _user(r)
        if any(
            user.get(k) and not _member(stored.get(s), user[k])
            for k, s in (("realm", "realm"), ("group", "groups"), ("role", "roles"))
        ):
            continue
        keep.append(r)
    oldest = body.get("sortOrder", "latestFirst").lower() == "oldestfirst"
    return sorted(keep, key=lambda r: (r["timestamp"], r["messageId"]), reverse=not oldest)


REQUESTS: list[dict[str, Any]] = [
    {"startDate": "2026-03-01"},
    {"startDate": "2026-03-02T10:30", "endDate": "2026-03-07T05:00:00"},
    {"startDate": "2026-03-01", "endDate": "2026-03-05", "sortOrder": "oldestFirst"},
    {"startDate": "2026-03-01", "filters": {"name": ["khub.search"]}},
    {"startDate": "2026-03-01", "filters": {"name": ["page", "document.display"]}},
    {"startDate": "2026-03-01", "filters": {"user": {"id": ["u-b"]}}},
    {"startDate": "2026-03-01", "filters": {"user": {"realm": ["Keycloak"]}}},
    {"startDate": "2026-03-01", "filters": {"user": {"realm": ["sso"], "role": ["FEEDBACK_USER"]}}},
    {
        "startDate": "2026-03-03",
        "filters": {"name": ["khub.search"], "user": {"group": ["nda_basic", "ft:administrator"]}},
        "sortOrder": "OldestFirst",
    },
    {"startDate": "2026-03-01", "filters": {"name": [], "user": {}}, "sortOrder": "LatestFirst"},
]


# -- the answers ---------------------------------------------------------------------------


def test_a_result_has_the_seeds_fields_from_the_documented_columns(world, lake_url) -> None:
    acme = world.sides["acme"]
    row = next(r for r in acme.rows if r["messageId"] == "acme-008")
    body = {
        "startDate": "2026-03-02T16:00",
        "endDate": "2026-03-02T16:01",
        "paging": {"page": 1, "perPage": 5},
    }
    answer = search(lake_url, acme.key, body)
    assert row["timestamp"] == dt.datetime(2026, 3, 2, 16, 0, 0, 8000, tzinfo=UTC)
    assert answer == {
        "startDate": "2026-03-02T16:00:00",
        "endDate": "2026-03-02T16:01:00",
        "paging": {"page": 1, "perPage": 5, "totalCount": 1, "lastPage": True},
        "results": [
            {
                "appName": "ft/turnkey-portal",
                "appVersion": "4.3.32",
                "contentLocale": "fr-FR",
                "datetime": 1772467200008,
                "id": "acme-008",
                "name": "page",
                "offline": True,
                "parameters": {
                    "searchQuery": {"terms": "q8"},
                    "n": 8,
                    "contentLocale": "fr-FR",
                    "offline": True,
                    "tenantId": "doc",
                },
                "sessionId": "1714487636947",
                "tenantId": "doc",
                "uiLocale": "en-US",
                "user": {"id": None, "realm": None, "groups": None, "roles": None},
                "userAgent": CONTEXT["userAgent"],
                "userIp": "10.60.1.38",
            }
        ],
    }


def test_datetime_is_milliseconds_floored() -> None:
    """The seed's example; sub-millisecond digits are cut, never rounded up."""
    moment = dt.datetime(2024, 4, 30, 14, 33, 56, 947000, tzinfo=UTC)
    assert analytics.epoch_ms(moment) == 1714487636947
    assert analytics.epoch_ms(moment.replace(microsecond=947999)) == 1714487636947


def test_absent_data_is_null(world, lake_url) -> None:
    acme = world.sides["acme"]
    # acme-009: an identify event without context or properties, of user u-a.
    body = {"startDate": "2026-03-02T21:00", "endDate": "2026-03-02T21:01"}
    (result,) = search(lake_url, acme.key, body)["results"]
    assert result["id"] == "acme-009" and result["name"] == "identify"
    assert result["user"] == {"id": "u-a", "realm": None, "groups": None, "roles": None}
    nulls = ("appName", "appVersion", "contentLocale", "offline", "parameters", "sessionId")
    nulls += ("tenantId", "uiLocale", "userAgent", "userIp")
    assert {k: result[k] for k in nulls} == dict.fromkeys(nulls)


@pytest.mark.parametrize("body", REQUESTS, ids=range(len(REQUESTS)))
def test_search_and_count_answer_exactly_the_matching_events(world, lake_url, body) -> None:
    for side in world.sides.values():
        want = expected(side.rows, body)
        ids, page = [], 1
        while True:
            paged = {**body, "paging": {"page": page, "perPage": 7}}
            answer = search(lake_url, side.key, paged)
            paging = answer["paging"]
            assert paging["totalCount"] == len(want)
            assert paging["lastPage"] == (page * 7 >= len(want))
            ids += [r["id"] for r in answer["results"]]
            if paging["lastPage"]:
                break
            page += 1
        assert ids == [r["messageId"] for r in want]
        assert count(lake_url, side.key, body)["count"] == len(want)


def test_without_paging_one_page_of_up_to_1000(world, lake_url) -> None:
    acme = world.sides["acme"]
    answer = search(lake_url, acme.key, {"startDate": "2026-03-01"})
    assert answer["paging"] == {"page": 1, "perPage": 1000, "totalCount": 44, "lastPage": True}
    assert answer["endDate"] == "2026-03-10T12:00:00"  # the API's clock, to the second
    beyond = search(
        lake_url, acme.key, {"startDate": "2026-03-01", "paging": {"page": 3, "perPage": 40}}
    )
    assert beyond["results"] == [] and beyond["paging"]["lastPage"] is True


def test_counts_grouped_by_day_and_name(world, lake_url) -> None:
    acme = world.sides["acme"]
    body = {
        "startDate": "2026-03-02T12:00",
        "endDate": "2026-03-05",
        "filters": {"name": ["khub.search", "page"]},
    }
    rows = expected(acme.rows, body)
    answer = count(lake_url, acme.key, {**body, "groupBy": ["day", "name"]})
    assert answer["count"] == len(rows)
    want: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["timestamp"].date().isoformat(), _name(r))
        want[key] = want.get(key, 0) + 1
    assert {(g["day"], g["name"]): g["count"] for g in answer["groups"]} == want
    by_day = count(lake_url, acme.key, {**body, "groupBy": ["day"]})["groups"]
    assert [g["day"] for g in by_day] == sorted({d for d, _ in want})
    assert sum(g["count"] for g in by_day) == len(rows)


def test_a_grouped_count_past_its_time_budget_is_a_503(world, lake_url, monkeypatch) -> None:
    monkeypatch.setattr(analytics, "GROUPED_SECONDS", -1.0)
    with client(lake_url, world.sides["acme"].key) as c:
        response = c.post(COUNT_PATH, json={"startDate": "2026-03-01", "groupBy": ["day"]})
    assert response.status_code == 503 and "narrow the range" in response.text
    assert response.headers["Retry-After"]


def test_no_key_sees_another_workspace(world, lake_url) -> None:
    for name, side in world.sides.items():
        other = next(s for n, s in world.sides.items() if n != name)
        answer = search(lake_url, side.key, {"startDate": "2026-03-01"})
        ids = {r["id"] for r in answer["results"]}
        assert ids == {r["messageId"] for r in side.rows}
        assert not ids & {r["messageId"] for r in other.rows + world.orphans}
        assert count(lake_url, side.key, {"startDate": "2026-03-01"})["count"] == len(side.rows)


# -- argument checks -----------------------------------------------------------------------

BAD: list[tuple[dict[str, Any], str]] = [
    ({}, "startDate"),
    ({"startDate": None}, "startDate"),
    ({"startDate": 20260301}, "startDate"),
    ({"startDate": "2026/03/01"}, "startDate"),
    ({"startDate": "2026-03-01T10"}, "startDate"),
    ({"startDate": "2026-03-01T10:00:00Z"}, "startDate"),
    ({"startDate": "2026-02-30"}, "startDate"),
    ({"startDate": "2025-03-10T11:59:59"}, "startDate"),  # more than a year ago
    ({"startDate": "2026-03-10T12:00:01"}, "startDate"),  # in the future
    ({"startDate": "2026-03-01", "endDate": "2026-03-01"}, "endDate"),
    ({"startDate": "2026-03-02", "endDate": "2026-03-01T23:59"}, "endDate"),
    ({"startDate": "2026-03-01", "endDate": "tomorrow"}, "endDate"),
    ({"startDate": "2026-03-01", "paging": {"perPage": 10}}, "paging.page"),
    ({"startDate": "2026-03-01", "paging": {"page": 1}}, "paging.perPage"),
    ({"startDate": "2026-03-01", "paging": {"page": 0, "perPage": 10}}, "paging.page"),
    ({"startDate": "2026-03-01", "paging": {"page": 1, "perPage": 0}}, "paging.perPage"),
    ({"startDate": "2026-03-01", "paging": {"page": 1, "perPage": 1001}}, "paging.perPage"),
    ({"startDate": "2026-03-01", "paging": {"page": "1", "perPage": 10}}, "paging.page"),
    ({"startDate": "2026-03-01", "paging": 5}, "paging"),
    ({"startDate": "2026-03-01", "sortOrder": "newest"}, "sortOrder"),
    ({"startDate": "2026-03-01", "filters": {"name": "khub.search"}}, "filters.name"),
    ({"startDate": "2026-03-01", "filters": {"name": [""]}}, "filters.name.0"),
    ({"startDate": "2026-03-01", "filters": {"name": ["x" * 257]}}, "filters.name.0"),
    ({"startDate": "2026-03-01", "filters": {"user": {"realm": ["a"] * 51}}}, "filters.user.realm"),
    ({"startDate": "2026-03-01", "filters": {"user": {"team": ["a"]}}}, "filters.user.team"),
    ({"startDate": "2026-03-01", "filters": {"names": ["a"]}}, "filters.names"),
    ({"startDate": "2026-03-01", "pageing": {"page": 1, "perPage": 1}}, "pageing"),
]


@pytest.mark.parametrize(("body", "parameter"), BAD, ids=[p for _, p in BAD])
@pytest.mark.parametrize("path", [SEARCH_PATH, COUNT_PATH])
def test_a_bad_request_is_a_400_naming_the_parameter(world, lake_url, path, body, parameter):
    with client(lake_url, world.sides["acme"].key) as c:
        response = c.post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["parameter"] == parameter, response.text


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"startDate": "2026-03-01", "groupBy": ["week"]}, "groupBy.0"),
        ({"startDate": "2026-03-01", "groupBy": ["name"]}, "groupBy"),
        ({"startDate": "2026-03-01", "groupBy": "day"}, "groupBy"),
    ],
)
def test_bad_grouping_is_a_400(world, lake_url, body, parameter) -> None:
    with client(lake_url, world.sides["acme"].key) as c:
        response = c.post(COUNT_PATH, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["parameter"] == parameter


def test_a_body_that_is_not_json_is_a_400(world, lake_url) -> None:
    with client(lake_url, world.sides["acme"].key) as c:
        response = c.post(SEARCH_PATH, content=b"{", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize("path", [SEARCH_PATH, COUNT_PATH])
@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_without_a_valid_key_401(lake_url, path, key) -> None:
    with client(lake_url, key) as c:
        response = c.post(path, json={"startDate": "2026-03-01"})
    assert response.status_code == 401 and response.json()["error"]["parameter"] == "Authorization"


def test_a_key_without_read_scope_403(world, lake_url) -> None:
    ws = world.catalog.workspace("acme")
    secret = world.catalog.create_api_key(ws.id, ["write"]).secret
    with client(lake_url, secret) as c:
        assert c.post(SEARCH_PATH, json={"startDate": "2026-03-01"}).status_code == 403


# -- the same answers from BigQuery --------------------------------------------------------


@pytest.fixture(scope="module")
def bq_url(world: World, bq_client, bq_endpoint) -> Iterator[str]:
    with bigquery_table(bq_client, bq_endpoint, world.lake) as table:
        reader = BigQueryReader(table, bq_endpoint)
        app = create_app(None, None, reader=reader, catalog=world.catalog)
        setattr(app.state, CLOCK_STATE, lambda: NOW)
        with running_server(app) as url:
            yield url


@pytest.mark.parametrize("body", REQUESTS, ids=range(len(REQUESTS)))
def test_bigquery_answers_as_the_lake(world, lake_url, bq_url, body) -> None:
    for side in world.sides.values():
        paged = {**body, "paging": {"page": 2, "perPage": 5}}
        assert search(bq_url, side.key, paged) == search(lake_url, side.key, paged)
        grouped = {**body, "groupBy": ["day"]}
        assert count(bq_url, side.key, grouped) == count(lake_url, side.key, grouped)
