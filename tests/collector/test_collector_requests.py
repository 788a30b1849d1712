"""The collector's answers over real HTTP: accepted forms, invalid events reported, every
refusal a 4xx whose JSON names the problem, CORS on the ingestion routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_support import Tenant, bearer, make_event

from eventpipe.catalog import Catalog


def landed(lake: Path) -> list[dict[str, Any]]:
    """Every envelope of the landing log (open segments included)."""
    lines = []
    for path in sorted((lake / "landing").glob("*.jsonl*")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "expected_body"),
    [
        ("/v1/events", {"batch": [{"x": 1}]}, "batch"),
        ("/v1/events", [{"x": 1}], "array"),
        ("/v1/events", {"x": 1}, "single"),
        ("/v1/events/page", {"x": 1}, "page"),
    ],
)
def test_write_key_forms_land_one_envelope_each(
    http: httpx.Client, lake: Path, tenant: Tenant, path: str, body: Any, expected_body: str
) -> None:
    event = make_event()
    doc = (
        {"batch": [event]}
        if expected_body == "batch"
        else [event]
        if expected_body == "array"
        else event
    )
    if expected_body == "page":
        doc = {k: v for k, v in event.items() if k not in ("type", "event")}
    response = http.post(
        path, json=doc, headers={**bearer(tenant.write_key), "X-Forwarded-For": "1.2.3.4"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted", "invalid": []}
    [envelope] = landed(lake)
    assert envelope["connectionId"] == tenant.connection
    assert envelope["ip"] == "127.0.0.1"  # no trusted proxy: X-Forwarded-For is not believed
    assert set(envelope) == {"receivedAt", "ip", "connectionId", "body"}
    if expected_body == "page":
        assert envelope["body"] == {**doc, "type": "page"}
    else:
        assert envelope["body"] == doc


def test_write_key_in_the_body_authenticates_and_is_not_landed(
    http: httpx.Client, lake: Path, tenant: Tenant
) -> None:
    response = http.post("/v1/events", json={"batch": [make_event()], "writeKey": tenant.write_key})
    assert response.status_code == 200, response.text
    [envelope] = landed(lake)
    assert "writeKey" not in envelope["body"] and tenant.write_key not in json.dumps(envelope)


def test_invalid_events_are_accepted_reported_and_kept(
    http: httpx.Client, lake: Path, tenant: Tenant
) -> None:
    batch = [make_event(), make_event(event=None), make_event(context={"screen": {"width": 0}})]
    response = http.post("/v1/events", json={"batch": batch}, headers=bearer(tenant.write_key))
    assert response.status_code == 200, response.text
    invalid = response.json()["invalid"]
    assert [(p["index"], p["field"], p["reason"]) for p in invalid] == [
        (1, "event", "missing_property"),
        (2, "context.screen.width", "invalid_value"),
    ]
    assert all(p["message"] for p in invalid)
    [envelope] = landed(lake)
    assert len(envelope["body"]["batch"]) == 3  # kept whole: the import fails them


def test_api_key_with_write_scope_needs_a_connection_of_its_workspace(
    http: httpx.Client, lake: Path, tenants: tuple[Tenant, Tenant]
) -> None:
    mine, other = tenants
    doc = {"batch": [make_event()]}
    error = error_of(http.post("/v1/events", json=doc, headers=bearer(mine.api_write)), 400)
    assert error["parameter"] == "connectionId"
    foreign = {**doc, "connectionId": other.connection}
    error = error_of(http.post("/v1/events", json=foreign, headers=bearer(mine.api_write)), 404)
    assert str(other.connection) in error["message"]
    own = {**doc, "connectionId": mine.connection}
    assert http.post("/v1/events", json=own, headers=bearer(mine.api_write)).status_code == 200
    assert [e["connectionId"] for e in landed(lake)] == [mine.connection]


def _big_batch(n: int) -> dict[str, Any]:
    return {"batch": [make_event() for _ in range(n)]}


def _deep(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return {"batch": [make_event(properties=value)]}


REFUSALS = [
    # (name, path, content, key kind, status, parameter, words in the message)
    (
        "body over the limit",
        "/v1/events",
        {"batch": [make_event(properties={"x": "y" * 70_000})]},
        "write",
        413,
        "body",
        "65,536 bytes",
    ),
    ("too many events", "/v1/events", _big_batch(51), "write", 413, "batch", "limit is 50"),
    ("nested too deep", "/v1/events", _deep(20), "write", 400, "body", "limit is 16"),
    ("bad JSON", "/v1/events", b'{"batch": [', "write", 400, "body", "not valid JSON"),
    ("empty body", "/v1/events", b"", "write", 400, "body", "empty"),
    (
        "duplicate key",
        "/v1/events",
        b'{"batch": [], "batch": []}',
        "write",
        400,
        "batch",
        "more than once",
    ),
    ("empty batch", "/v1/events", {"batch": []}, "write", 400, "body", "no event"),
    (
        "batch not an array",
        "/v1/events",
        {"batch": {"type": "track"}},
        "write",
        400,
        "batch",
        "array",
    ),
    (
        "invalid batch sentAt",
        "/v1/events",
        {"batch": [make_event()], "sentAt": "noon"},
        "write",
        400,
        "sentAt",
        "ISO 8601",
    ),
    ("not an object or array", "/v1/events", b'"hello"', "write", 400, "body", "object"),
    ("single event without type", "/v1/events", {"anonymousId": "a"}, "write", 400, "type", "type"),
    (
        "unknown type in the path",
        "/v1/events/click",
        {"anonymousId": "a"},
        "write",
        404,
        "type",
        "click",
    ),
    (
        "path and body types differ",
        "/v1/events/page",
        make_event(),
        "write",
        400,
        "type",
        "differs",
    ),
    (
        "event of another connection",
        "/v1/events",
        {"batch": [make_event(connectionId=7)]},
        "write",
        403,
        "batch[0].connectionId",
        "connection 7",
    ),
    (
        "batch of another connection",
        "/v1/events",
        {"batch": [make_event()], "connectionId": 7},
        "write",
        403,
        "connectionId",
        "only",
    ),
    (
        "missing key",
        "/v1/events",
        {"batch": [make_event()]},
        None,
        401,
        "Authorization",
        "missing key",
    ),
    (
        "unknown key",
        "/v1/events",
        {"batch": [make_event()]},
        "epw_nope",
        401,
        "Authorization",
        "unknown or revoked",
    ),
    (
        "revoked key",
        "/v1/events",
        {"batch": [make_event()]},
        "revoked",
        401,
        "Authorization",
        "unknown or revoked",
    ),
    (
        "read key on ingest",
        "/v1/events",
        {"batch": [make_event()]},
        "read",
        403,
        "Authorization",
        "write scope",
    ),
    (
        "admin key on ingest",
        "/v1/events",
        {"batch": [make_event()]},
        "admin",
        403,
        "Authorization",
        "write scope",
    ),
    (
        "API key on /v1/events/{type}",
        "/v1/events/track",
        make_event(),
        "api_write",
        403,
        "Authorization",
        "write key",
    ),
    (
        "API key sends an array",
        "/v1/events",
        [make_event()],
        "api_write",
        400,
        "batch",
        "batch document",
    ),
    (
        "track without event_name",
        "/v1/track",
        {"plan": "pro"},
        "write",
        400,
        "event_name",
        "required",
    ),
    (
        "track with an empty event_name",
        "/v1/track",
        {"event_name": " "},
        "write",
        400,
        "event_name",
        "non-empty",
    ),
    (
        "track on an API key",
        "/v1/track",
        {"event_name": "x"},
        "api_write",
        403,
        "Authorization",
        "write key",
    ),
]


@pytest.mark.parametrize(
    ("path", "content", "key", "status", "parameter", "words"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_refusals_are_4xx_naming_the_problem_and_land_nothing(
    http: httpx.Client,
    lake: Path,
    tenant: Tenant,
    path: str,
    content: Any,
    key: str | None,
    status: int,
    parameter: str,
    words: str,
) -> None:
    secret = {
        "write": tenant.write_key,
        "read": tenant.api_read,
        "admin": tenant.api_admin,
        "api_write": tenant.api_write,
    }.get(key or "", key)
    if key == "revoked":
        catalog = Catalog.in_lake(lake)
        created = catalog.create_write_key(tenant.workspace, tenant.connection)
        catalog.revoke_key(created.key.id)
        secret = created.secret
    headers = bearer(secret) if secret else {}
    if isinstance(content, bytes):
        response = http.post(
            path, content=content, headers={**headers, "Content-Type": "application/json"}
        )
    else:
        response = http.post(path, json=content, headers=headers)
    error = error_of(response, status)
    assert error["parameter"] == parameter
    assert words in error["message"]
    assert response.headers["access-control-allow-origin"] == "*"
    assert not (lake / "landing").exists() or landed(lake) == []


def test_track_becomes_a_track_event(http: httpx.Client, lake: Path, tenant: Tenant) -> None:
    body = {"event_name": "Signed Up", "metric_name": "revenue", "metric_value": 9.5, "plan": "pro"}
    response = http.post(
        "/v1/track", json=body, headers={**bearer(tenant.write_key), "User-Agent": "ua/1"}
    )
    assert response.status_code == 200, response.text
    again = http.post(
        "/v1/track",
        json={"event_name": "Again"},
        headers={**bearer(tenant.write_key), "User-Agent": "ua/1"},
    )
    assert again.status_code == 200
    first, second = (e["body"] for e in landed(lake))
    assert first["type"] == "track" and first["event"] == "Signed Up"
    assert first["properties"] == {"metric_name": "revenue", "metric_value": 9.5, "plan": "pro"}
    assert first["timestamp"] == landed(lake)[0]["receivedAt"]  # default: the receive time
    assert first["anonymousId"] == second["anonymousId"]  # one client, one derived id
    with_ids = {"event_name": "x", "userId": "u1", "timestamp": "2026-01-01T00:00:00Z"}
    assert (
        http.post("/v1/track", json=with_ids, headers=bearer(tenant.write_key)).status_code == 200
    )
    third = landed(lake)[2]["body"]
    assert (third["userId"], third["timestamp"], "anonymousId" in third) == (
        "u1",
        "2026-01-01T00:00:00Z",
        False,
    )


def test_cors_preflight_on_the_ingestion_routes(http: httpx.Client) -> None:
    for path in ("/v1/events", "/v1/events/track", "/v1/track"):
        response = http.options(
            path,
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        )
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == "https://shop.example"
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "Authorization" in response.headers["access-control-allow-headers"]


def test_trusted_proxy_forwarded_address(lake: Path, tenant: Tenant) -> None:
    from collector_support import running_app

    from eventpipe.collector.server import CollectorConfig, collector_app

    config = CollectorConfig(lake=str(lake), trusted_proxies=["127.0.0.0/8"]).check()
    with running_app(collector_app(config)) as url:
        headers = {**bearer(tenant.write_key), "X-Forwarded-For": "203.0.113.9, 127.0.0.2"}
        assert (
            httpx.post(url + "/v1/events", json=[make_event()], headers=headers).status_code == 200
        )
    assert [e["ip"] for e in landed(lake)] == ["203.0.113.9"]


def test_pending_bytes_over_the_limit_get_a_503_to_retry(lake: Path, tenant: Tenant) -> None:
    from collector_support import running_app

    from eventpipe.collector.server import CollectorConfig, collector_app

    config = CollectorConfig(lake=str(lake), max_pending_bytes=2000).check()
    with running_app(collector_app(config)) as url:
        big = {"batch": [make_event(properties={"text": "x" * 3000})]}
        response = httpx.post(url + "/v1/events", json=big, headers=bearer(tenant.write_key))
        error = error_of(response, 503)
        assert "2,000 bytes of pending requests" in error["message"]
        assert response.headers["retry-after"] == "1"
        small = httpx.post(
            url + "/v1/events", json=[make_event()], headers=bearer(tenant.write_key)
        )
        assert small.status_code == 200
    assert len(landed(lake)) == 1


@pytest.mark.parametrize(
    ("path", "wrap"),
    [
        ("/v1/events", lambda event: {"batch": [event]}),
        ("/v1/events", lambda event: [event]),
        ("/v1/events", lambda event: event),
        ("/v1/events/track", lambda event: event),
    ],
    ids=["batch", "array", "single", "typed"],
)
def test_depth_limit_counts_per_event_as_the_import_does(
    http: httpx.Client, tenant: Tenant, path: str, wrap: Any
) -> None:
    """--max-depth 16: an event of 16 levels (the event object is level 1, as the import's
    json_audit counts) is accepted in every form; one of 17 levels is refused."""
    within = make_event(properties=_deep(15)["batch"][0]["properties"])
    assert _depth_of(within) == 16
    response = http.post(path, json=wrap(within), headers=bearer(tenant.write_key))
    assert response.status_code == 200, response.text
    beyond = make_event(properties=_deep(16)["batch"][0]["properties"])
    error = error_of(http.post(path, json=wrap(beyond), headers=bearer(tenant.write_key)), 400)
    assert "nests 17 levels" in error["message"] or "at least 17" in error["message"]
    assert "limit is 16" in error["message"]


def test_track_depth_counts_the_event_it_becomes(http: httpx.Client, tenant: Tenant) -> None:
    """`/v1/track` fields become `properties`: one level deeper in the event than in the body."""
    body = {"event_name": "Deep", "extra": _deep(14)["batch"][0]["properties"]}
    assert _depth_of(body) == 15
    ok = http.post("/v1/track", json=body, headers=bearer(tenant.write_key))
    assert ok.status_code == 200, ok.text
    body["extra"] = {"b": body["extra"]}  # body 16, event 17
    error = error_of(http.post("/v1/track", json=body, headers=bearer(tenant.write_key)), 400)
    assert "nests 17 levels deep" in error["message"]


def _depth_of(value: Any) -> int:
    if isinstance(value, dict | list):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((_depth_of(c) for c in children), default=0)
    return 0
