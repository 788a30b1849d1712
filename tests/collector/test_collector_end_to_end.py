"""End to end: events sent over HTTP to `eventpipe serve` (every form, a write key and a
write-scope API key), `eventpipe import --landing`, read back through GET /v1/events with
a read key of the same workspace, and never with a key of another."""

from __future__ import annotations

from pathlib import Path

import duckdb
import httpx
import pytest
from collector_support import (
    Tenant,
    bearer,
    landing_closed,
    make_event,
    serve_process,
    wait_until,
)

from eventpipe.jobs.cli import main

pytestmark = pytest.mark.slow


def _send_every_form(url: str, t: Tenant) -> set[str]:
    """One request of each form; the messageIds sent."""
    ids: list[str] = []

    def event(**kw: object) -> dict:
        e = make_event(**kw)
        ids.append(e["messageId"])
        return e

    key = bearer(t.write_key)
    page = {k: v for k, v in event(type="page").items() if k not in ("type", "event")}
    requests = [
        (
            "/v1/events",
            {"batch": [event(), event(userId="u-1")], "context": {"locale": "en-GB"}},
            key,
        ),
        ("/v1/events", [event(), event()], key),
        ("/v1/events", event(), key),
        ("/v1/events", {"batch": [event()], "writeKey": t.write_key}, {}),
        ("/v1/events/page", page, key),
        (
            "/v1/track",
            {"event_name": "Signed Up", "messageId": event()["messageId"], "plan": "pro"},
            key,
        ),
        ("/v1/events", {"batch": [event()], "connectionId": t.connection}, bearer(t.api_write)),
    ]
    with httpx.Client(base_url=url, timeout=30) as client:
        for path, body, headers in requests:
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 200, (path, response.text)
            assert response.json()["invalid"] == []
    return set(ids)


def _listed(url: str, key: str) -> httpx.Response:
    return httpx.get(url + "/v1/events", params={"limit": 1000}, headers=bearer(key), timeout=30)


def test_sent_over_http_imported_and_read_back_by_its_workspace_only(
    lake: Path, tenants: tuple[Tenant, Tenant]
) -> None:
    acme, globex = tenants
    with serve_process(lake, "--landing-segment-seconds", "1") as (url, _process):
        sent_acme = _send_every_form(url, acme)
        sent_globex = _send_every_form(url, globex)
        # The open segment is closed by its timer, with no further request.
        wait_until(lambda: landing_closed(lake), "the idle collector to close its segment")
        assert main(["import", "--landing", "--lake", str(lake)]) == 0
        assert main(["import", "--landing", "--lake", str(lake)]) == 0  # nothing twice

        stored = duckdb.sql(
            f"SELECT connectionId, messageId FROM read_parquet('{lake}/events/*/*.parquet')"
        ).fetchall()
        assert sorted(m for _, m in stored) == sorted(sent_acme | sent_globex)
        assert {m for c, m in stored if c == acme.connection} == sent_acme

        for mine, other, sent in ((acme, globex, sent_acme), (globex, acme, sent_globex)):
            response = _listed(url, mine.api_read)
            assert response.status_code == 200, response.text
            events = response.json()["events"]
            assert {e["messageId"] for e in events} == sent
            assert {e["connectionId"] for e in events} == {mine.connection}
            assert other.connection not in {e["connectionId"] for e in events}
            assert _listed(url, mine.write_key).status_code == 403  # ingestion only
        track = [
            e
            for e in _listed(url, acme.api_read).json()["events"]
            if e["type"] == "track" and e["event"] == "Signed Up"
        ]
        assert [e["properties"] for e in track] == [{"plan": "pro"}]
        assert {e["context"]["ip"] for e in _listed(url, acme.api_read).json()["events"]} == {
            "127.0.0.1"
        }
    assert not list((lake / "landing").glob("*.jsonl"))
    assert len(list((lake / "landing" / "imported").glob("*.jsonl"))) >= 1


def test_serve_documents_the_collector_and_keeps_other_routes_server_to_server(
    lake: Path, tenants: tuple[Tenant, Tenant]
) -> None:
    with serve_process(lake) as (url, _process):
        spec = httpx.get(url + "/openapi.json").json()
        assert {"get", "post"} <= set(spec["paths"]["/v1/events"])
        assert "post" in spec["paths"]["/v1/events/{type}"]
        assert "post" in spec["paths"]["/v1/track"]
        preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}
        for path in ("/v1/events/schema", "/openapi.json"):
            response = httpx.options(url + path, headers=preflight)
            assert response.status_code in (404, 405)
            assert "access-control-allow-origin" not in response.headers
        listed = _listed(url, tenants[0].api_read)
        assert listed.status_code == 200
        assert "access-control-allow-origin" not in listed.headers
        schema = httpx.get(url + "/v1/events/schema", headers=bearer(tenants[0].api_read))
        assert schema.status_code == 200
