"""Bearer authentication, the schema endpoint and the OpenAPI docs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from api_support import API_KEY, running_server

from eventpipe.api.app import create_app
from eventpipe.api.auth import Authenticator, parse_api_keys
from eventpipe.schemas import schema_document

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/schema"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": f"Bearer {API_KEY}x"},
        {"Authorization": "Bearer"},
        {"Authorization": API_KEY},
    ],
)
def test_missing_or_wrong_key_is_401(server_url: str, path: str, headers: dict) -> None:
    response = httpx.get(server_url + path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["status"] == 401 and error["parameter"] == "Authorization"


def test_bearer_scheme_is_case_insensitive(server_url: str) -> None:
    response = httpx.get(
        f"{server_url}/v1/events/schema", headers={"Authorization": f"bearer {API_KEY}"}
    )
    assert response.status_code == 200


def test_auth_is_checked_before_the_filter(server_url: str) -> None:
    response = httpx.get(f"{server_url}/v1/events", params={"filter": "{bad"})
    assert response.status_code == 401


def test_schema_endpoint_returns_the_schema_document(client: httpx.Client) -> None:
    response = client.get("/v1/events/schema")
    assert response.status_code == 200
    assert response.json() == schema_document()
    assert response.json() == json.loads((FIXTURES / "seed_event_schema.json").read_text())


def test_docs_and_openapi_are_served(server_url: str) -> None:
    assert "swagger" in httpx.get(f"{server_url}/docs").text.lower()
    spec = httpx.get(f"{server_url}/openapi.json").json()
    params = {p["name"] for p in spec["paths"]["/v1/events"]["get"]["parameters"]}
    assert params == {"properties", "filter", "order", "ascending", "first", "limit"}
    assert "/v1/events/schema" in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_several_keys(tmp_path: Path) -> None:
    with running_server(create_app(str(tmp_path), ["k1", "k2"])) as url:
        for key, status in [("k1", 200), ("k2", 200), ("k3", 401)]:
            response = httpx.get(f"{url}/v1/events", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == status


def test_no_key_refused_unless_insecure(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no catalog and no API key"):
        create_app(str(tmp_path), [])
    with pytest.raises(ValueError, match="no catalog and no API key"):
        create_app(str(tmp_path), None)
    with running_server(create_app(str(tmp_path), None, insecure_no_auth=True)) as url:
        assert httpx.get(f"{url}/v1/events").json() == {"events": []}


def test_parse_api_keys() -> None:
    assert parse_api_keys(["a", " b , c,,", None, "a", ""]) == ["a", "b", "c"]


def test_legacy_key_comparison() -> None:
    auth = Authenticator(legacy_keys=["secret"])
    assert auth.principal_of("secret") is not None
    assert auth.principal_of("secre") is None
    assert auth.principal_of("secretx") is None
    assert auth.principal_of("") is None
