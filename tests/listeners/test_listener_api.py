"""The listener endpoints of seed 000 against a real `eventpipe serve` process: events sent
over HTTP with a write key, read back through a listener with its filter applied, size
and omitted, the limits and the errors exactly as the seed lists them, and isolation
between workspaces."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from collector_support import Tenant, make_event
from listener_support import (
    LISTENERS,
    bearer,
    create,
    event_is,
    read,
    read_when_observed,
    send,
)

from eventpipe.catalog import Catalog

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


def test_a_listener_observes_the_matching_accepted_events_enriched_in_order(
    http: httpx.Client, tenant: Tenant
):
    listener = create(http, tenant.api_admin, filter=event_is("Clicked"))
    everything = create(http, tenant.api_admin)
    nothing = create(http, tenant.api_admin, filter=event_is("Never Sent"))
    events = [
        make_event(event="Clicked", context={"userAgent": CHROME}, properties={"n": 1}),
        make_event(event="Viewed"),
        make_event(event="Clicked", properties={"n": 2}),
    ]
    answer = send(http, tenant.write_key, events, context={"locale": "en-GB"})
    assert answer == {"status": "accepted", "invalid": []}

    observed = read_when_observed(http, tenant.api_admin, listener)
    assert observed["omitted"] == 0
    first, second = observed["events"]
    assert [first["messageId"], second["messageId"]] == [
        events[0]["messageId"],
        events[2]["messageId"],
    ]
    assert first["connectionId"] == tenant.connection
    assert first["context"]["browser"] == {"name": "Chrome", "version": "120.0.0"}  # enriched
    assert first["context"]["locale"] == "en-GB"  # the batch context, merged (normalised)
    assert first["context"]["ip"] == "127.0.0.1"
    assert first["properties"] == {"n": 1}
    assert first["traits"] == {}
    assert first["timestamp"] == "2026-12-01T10:00:00.000Z"
    assert first["receivedAt"].endswith("Z")
    assert "kpid" not in first and "writeKey" not in first
    # The capture of one request is one transaction: the others are complete too.
    assert len(read(http, tenant.api_admin, everything)["events"]) == 3
    assert read(http, tenant.api_admin, nothing) == {"events": [], "omitted": 0}


def test_a_listener_holds_size_events_counts_the_others_and_a_read_empties_it(
    http: httpx.Client, tenant: Tenant
):
    listener = create(http, tenant.api_admin, size=2)
    send(http, tenant.write_key, [make_event() for _ in range(5)])
    observed = read_when_observed(http, tenant.api_admin, listener)
    assert (len(observed["events"]), observed["omitted"]) == (2, 3)
    assert read(http, tenant.api_admin, listener) == {"events": [], "omitted": 0}
    sent = make_event()
    send(http, tenant.write_key, [sent])
    again = read_when_observed(http, tenant.api_admin, listener)
    assert [e["messageId"] for e in again["events"]] == [sent["messageId"]]


@pytest.mark.parametrize("body", [{}, {"size": None}, {"connectionId": None, "filter": None}])
def test_the_default_size_is_10(http: httpx.Client, tenant: Tenant, body: dict):
    listener = create(http, tenant.api_admin, **body)
    send(http, tenant.write_key, [make_event() for _ in range(12)])
    observed = read_when_observed(http, tenant.api_admin, listener)
    assert (len(observed["events"]), observed["omitted"]) == (10, 2)


def test_size_1000_is_the_largest(http: httpx.Client, tenant: Tenant):
    listener = create(http, tenant.api_admin, size=1000)
    # 3 requests of 400 events (the collector's --max-events is 2,000)
    for _ in range(3):
        send(http, tenant.write_key, [make_event() for _ in range(400)])
    held, omitted = 0, 0
    while held + omitted < 1200:
        observed = read_when_observed(http, tenant.api_admin, listener)
        held, omitted = held + len(observed["events"]), omitted + observed["omitted"]
        assert len(observed["events"]) <= 1000
    assert held + omitted == 1200


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"size": 0}, "size"),
        ({"size": 1001}, "size"),
        ({"size": -1}, "size"),
        ({"size": "5"}, "size"),
        ({"size": True}, "size"),
        ({"size": 2.5}, "size"),
        ({"connectionId": "1"}, "connectionId"),
        ({"connectionId": True}, "connectionId"),
        ({"filter": {"logical": "xor", "conditions": []}}, "filter.logical"),
        ({"filter": "event is x"}, "filter"),
        ({"sizes": 5}, "sizes"),
    ],
)
def test_a_bad_create_request_is_a_400_naming_the_field(
    http: httpx.Client, tenant: Tenant, body: dict, parameter: str
):
    response = http.post(LISTENERS, json=body, headers=bearer(tenant.api_admin))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["parameter"] == parameter


@pytest.mark.parametrize("content", [b"", b"[]", b"{not json", b'{"size": 1}' + b" " * 80_000])
def test_a_body_that_is_no_object_or_too_big_is_refused(
    http: httpx.Client, tenant: Tenant, content: bytes
):
    response = http.post(LISTENERS, content=content, headers=bearer(tenant.api_admin))
    assert response.status_code in (400, 413), response.text
    assert response.json()["error"]["parameter"] == "body"


def test_the_101st_listener_of_a_workspace_is_a_422(http: httpx.Client, new_tenant):
    full, other = new_tenant(), new_tenant()
    for _ in range(100):
        create(http, full.api_admin)
    response = http.post(LISTENERS, json={}, headers=bearer(full.api_admin))
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "there are already 100 listeners"
    create(http, other.api_admin)  # the limit is per workspace


def test_a_connection_not_of_the_callers_workspace_is_a_422(
    http: httpx.Client,
    new_tenant,
):
    mine, theirs = new_tenant(), new_tenant()
    for connection in (theirs.connection, 2**31 - 1, 0, -5):
        response = http.post(
            LISTENERS, json={"connectionId": connection}, headers=bearer(mine.api_admin)
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"] == {
            "status": 422,
            "parameter": "connectionId",
            "message": "connection does not exist",
        }


def test_a_listener_of_one_connection_observes_that_connection_only(
    http: httpx.Client, shared_lake: Path, tenant: Tenant
):
    catalog = Catalog.in_lake(shared_lake)
    app = catalog.create_connection(tenant.workspace, "app")
    app_key = catalog.create_write_key(tenant.workspace, app.id).secret
    admin = catalog.create_api_key(tenant.workspace, ["admin"]).secret  # sees the new one
    site_only = create(http, admin, connectionId=tenant.connection)
    whole = create(http, admin)
    from_site, from_app = make_event(), make_event()
    send(http, app_key, [from_app])
    send(http, tenant.write_key, [from_site])
    send(http, tenant.api_write, [make_event()], connectionId=app.id)  # an API write key
    seen = []
    while len(seen) < 3:
        seen += read_when_observed(http, admin, whole)["events"]
    assert {e["connectionId"] for e in seen} == {tenant.connection, app.id}
    observed = read(http, admin, site_only)
    assert [e["messageId"] for e in observed["events"]] == [from_site["messageId"]]


def test_a_listener_is_its_workspaces_only(http: httpx.Client, new_tenant):
    acme, globex = new_tenant(), new_tenant()
    listener = create(http, acme.api_admin)
    theirs = create(http, globex.api_admin)
    send(http, globex.write_key, [make_event(userId="shared-user")])
    sent = make_event(userId="shared-user")
    send(http, acme.write_key, [sent])
    observed = read_when_observed(http, acme.api_admin, listener)
    assert [e["messageId"] for e in observed["events"]] == [sent["messageId"]]
    # another workspace's admin key: the listener does not exist for it
    for method in ("GET",):
        response = http.request(method, f"{LISTENERS}/{listener}", headers=bearer(globex.api_admin))
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "event listener does not exist"
    response = http.delete(f"{LISTENERS}/{listener}", headers=bearer(globex.api_admin))
    assert response.status_code == 204  # does nothing
    assert read(http, acme.api_admin, listener) == {"events": [], "omitted": 0}
    assert len(read_when_observed(http, globex.api_admin, theirs)["events"]) == 1


def test_unknown_and_deleted_listeners(http: httpx.Client, tenant: Tenant):
    key = bearer(tenant.api_admin)
    response = http.get(f"{LISTENERS}/a9081719-e505-405b-95d9-33c77facd987", headers=key)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "status": 404,
        "parameter": "id",
        "message": "event listener does not exist",
    }
    assert http.delete(f"{LISTENERS}/no-such-listener", headers=key).status_code == 204
    listener = create(http, tenant.api_admin)
    response = http.delete(f"{LISTENERS}/{listener}", headers=key)
    assert (response.status_code, response.content) == (204, b"")
    assert http.get(f"{LISTENERS}/{listener}", headers=key).status_code == 404
    assert http.get(f"{LISTENERS}/{'x' * 65}", headers=key).status_code == 400


def test_only_an_admin_key_of_a_workspace_manages_listeners(http: httpx.Client, tenant: Tenant):
    listener = create(http, tenant.api_admin)
    for key in (tenant.api_read, tenant.api_write, tenant.write_key):
        assert http.post(LISTENERS, json={}, headers=bearer(key)).status_code == 403
        assert http.get(f"{LISTENERS}/{listener}", headers=bearer(key)).status_code == 403
        assert http.delete(f"{LISTENERS}/{listener}", headers=bearer(key)).status_code == 403
    assert http.post(LISTENERS, json={}).status_code == 401
    assert http.post(LISTENERS, json={}, headers=bearer("epk_unknown")).status_code == 401


def test_events_refused_by_validation_are_not_observed(http: httpx.Client, tenant: Tenant):
    listener = create(http, tenant.api_admin)
    valid = make_event()
    answer = send(http, tenant.write_key, [{"type": "identify", "anonymousId": "a"}, valid])
    assert [p["index"] for p in answer["invalid"]] == [0]  # kept for the failed table
    observed = read_when_observed(http, tenant.api_admin, listener)
    assert [e["messageId"] for e in observed["events"]] == [valid["messageId"]]
    assert observed["omitted"] == 0
    refused = http.post("/v1/events", content=b"{not json", headers=bearer(tenant.write_key))
    assert refused.status_code == 400
    sent = make_event()
    send(http, tenant.write_key, [sent])
    observed = read_when_observed(http, tenant.api_admin, listener)
    assert [e["messageId"] for e in observed["events"]] == [sent["messageId"]]


def test_the_collectors_answer_is_the_same_with_and_without_a_listener(
    http: httpx.Client, tenant: Tenant
):
    def answers() -> list[tuple[int, bytes, str | None]]:
        bodies = [
            {"batch": [make_event(messageId="m-1"), {"type": "identify", "messageId": "m-2"}]},
            {"batch": []},
            [make_event(messageId="m-3")],
        ]
        out = []
        for body in bodies:
            r = http.post("/v1/events", json=body, headers=bearer(tenant.write_key))
            out.append((r.status_code, r.content, r.headers.get("content-type")))
        r = http.post(
            "/v1/events/track", json=make_event(messageId="m-4"), headers=bearer(tenant.write_key)
        )
        out.append((r.status_code, r.content, r.headers.get("content-type")))
        return out

    without = answers()
    listener = create(http, tenant.api_admin)
    assert answers() == without
    assert len(read_when_observed(http, tenant.api_admin, listener)["events"]) >= 1


def test_the_routes_are_documented(http: httpx.Client):
    paths = http.get("/openapi.json").json()["paths"]
    assert set(paths[LISTENERS]) >= {"post"}  # beside the collector's POST /v1/events/{type}
    assert set(paths[LISTENERS + "/{id}"]) == {"get", "delete"}
    create_doc = paths[LISTENERS]["post"]
    assert "admin" in create_doc["description"]
    assert {"422", "403"} <= set(create_doc["responses"])
    assert (
        "size" in create_doc["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    assert "404" in paths[LISTENERS + "/{id}"]["get"]["responses"]


def test_the_answer_does_not_wait_for_the_listeners(
    http: httpx.Client, shared_lake: Path, tenant: Tenant
):
    """While the listeners' file is locked (the capture cannot write, for up to its 30 s
    busy timeout), the collector still answers; the capture completes once it is free."""
    listener = create(http, tenant.api_admin)
    sent = make_event()
    with sqlite3.connect(shared_lake / "_listeners.sqlite", isolation_level=None) as db:
        db.execute("BEGIN IMMEDIATE")  # the write lock: every capture waits for it
        try:
            answer = send(http, tenant.write_key, [sent])
        finally:
            db.execute("ROLLBACK")
    assert answer == {"status": "accepted", "invalid": []}
    observed = read_when_observed(http, tenant.api_admin, listener)
    assert [e["messageId"] for e in observed["events"]] == [sent["messageId"]]
