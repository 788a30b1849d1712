"""The erasure endpoints of `eventpipe serve`: an admin key erases in its own workspace
(asynchronously: 202, then the status), other keys are refused, bad bodies are 4xx."""

from __future__ import annotations

import httpx
import pytest
from collector_support import bearer, make_tenant, serve_process, wait_until
from erasure_support import PERSON, PERSON_ANON, build_lake, is_persons_event, table_rows
from test_erase_lake import api_events

from eventpipe.catalog import Catalog

pytestmark = pytest.mark.slow


def status(client: httpx.Client, key: str, request_id: str) -> httpx.Response:
    return client.get(f"/v1/erasures/{request_id}", headers=bearer(key))


def finished(client: httpx.Client, key: str, request_id: str) -> dict:
    answers: list[dict] = []

    def done() -> bool:
        answer = status(client, key, request_id)
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
        return answers[-1]["status"] == "done"

    wait_until(done, f"erasure {request_id}", limit=300)
    return answers[-1]


def test_an_admin_key_erases_a_user_of_its_own_workspace(tmp_path):
    lake = build_lake(tmp_path)
    theirs = [
        r
        for r in table_rows(lake.path, "events")
        if is_persons_event(r) and r["connectionId"] == lake.b.connection
    ]
    with serve_process(lake.path) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        assert client.delete(f"/v1/users/{PERSON}").status_code == 401
        for key in (lake.a.api_read, lake.a.write_key):
            refused = client.delete(f"/v1/users/{PERSON}", headers=bearer(key))
            assert refused.status_code == 403 and "error" in refused.json()

        answer = client.delete(f"/v1/users/{PERSON}", headers=bearer(lake.a.api_admin))
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["id"]
        assert answer.json()["status"] == "pending"
        assert answer.headers["location"] == f"/v1/erasures/{request_id}"
        assert status(client, lake.b.api_admin, request_id).status_code == 404
        record = finished(client, lake.a.api_admin, request_id)
        assert record["counts"]["events"] == 2  # alpha's events of that userId
        assert "ids" not in record

        assert api_events(url, lake.a.api_read, "userId", PERSON) == []
        assert len(api_events(url, lake.b.api_read, "userId", PERSON)) == len(theirs) == 1

        answer = client.post(
            "/v1/erasures",
            json={"anonymousIds": [PERSON_ANON]},
            headers=bearer(lake.a.api_admin),
        )
        assert answer.status_code == 202, answer.text
        record = finished(client, lake.a.api_admin, answer.json()["id"])
        assert record["counts"]["events"] == 1  # the identified one went with the userId
        assert api_events(url, lake.a.api_read, "anonymousId", PERSON_ANON) == []

    for path in (lake.path / "_erasures" / "requests").glob("*.json"):
        text = path.read_text()
        assert PERSON not in text and PERSON_ANON not in text and '"done"' in text


BAD_BODIES = [
    (b"{}", 422, "userIds"),
    (b'{"userIds": "x"}', 422, "userIds"),
    (b'{"userIds": [""]}', 422, "userIds"),
    (b'{"kpids": [1]}', 422, "kpids"),
    (b'{"emails": ["a@b"]}', 422, "emails"),
    (b"[]", 400, "body"),
    (b"{", 400, "body"),
    (b'{"userIds": ["' + b"x" * 300_000 + b'"]}', 413, "body"),
    (b'{"userIds": [' + b",".join(b'"u%d"' % i for i in range(1001)) + b"]}", 422, "userIds"),
]


def test_bad_erasure_requests_are_4xx_with_a_message(tmp_path):
    lake = tmp_path / "lake"
    tenant = make_tenant(Catalog.in_lake(lake), "alpha")
    admin = bearer(tenant.api_admin)
    with serve_process(lake) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        for body, code, parameter in BAD_BODIES:
            answer = client.post("/v1/erasures", content=body, headers=admin)
            assert answer.status_code == code, (body[:40], answer.text)
            assert answer.json()["error"]["parameter"] == parameter
        for request_id in ("nope", "..%2Fkey", "a" * 65):
            assert client.get(f"/v1/erasures/{request_id}", headers=admin).status_code == 404
    assert not (lake / "_erasures" / "requests").exists()
