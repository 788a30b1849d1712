"""Catalog keys on the read API: scopes (401/403), the legacy shortcut, revocation's bound."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_support import running_server

from eventpipe.api.app import create_app
from eventpipe.api.auth import DEFAULT_CACHE_SECONDS, Authenticator
from eventpipe.api.errors import ApiError
from eventpipe.catalog import Catalog


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.in_lake(tmp_path)


def test_a_catalog_key_resolves_to_its_workspace_and_connections(catalog: Catalog) -> None:
    acme, other = catalog.create_workspace("Acme"), catalog.create_workspace("Other")
    web = catalog.create_connection(acme.id)
    catalog.create_connection(other.id)
    read = catalog.create_api_key(acme.id, ["read"]).secret
    auth = Authenticator(catalog)
    principal = auth.authorize(read, "read")
    assert (principal.workspace, principal.connections) == (acme.id, {web.id})


@pytest.mark.parametrize(
    ("scopes", "needed", "message"),
    [
        (["write"], "read", "lacks the 'read' scope"),
        (["admin"], "read", "lacks the 'read' scope"),
        (["read"], "admin", "lacks the 'admin' scope"),
        (["read", "admin"], "write", "lacks the 'write' scope"),
    ],
)
def test_a_key_without_the_scope_is_403(catalog, scopes, needed, message) -> None:
    acme = catalog.create_workspace("Acme")
    secret = catalog.create_api_key(acme.id, scopes).secret
    with pytest.raises(ApiError, match=message) as refused:
        Authenticator(catalog).authorize(secret, needed)
    assert refused.value.status == 403


def test_an_endpoint_may_accept_one_of_several_scopes(catalog: Catalog) -> None:
    acme = catalog.create_workspace("Acme")
    web = catalog.create_connection(acme.id)
    auth = Authenticator(catalog)
    for secret in (
        catalog.create_write_key(acme.id, web.id).secret,
        catalog.create_api_key(acme.id, ["write"]).secret,
    ):
        assert auth.authorize(secret, "ingest", "write").workspace == acme.id
    reader = catalog.create_api_key(acme.id, ["read"]).secret
    with pytest.raises(ApiError, match="lacks the 'ingest' or 'write' scope") as refused:
        auth.authorize(reader, "ingest", "write")
    assert refused.value.status == 403


def test_an_event_write_key_is_403_on_every_api_scope(catalog: Catalog) -> None:
    acme = catalog.create_workspace("Acme")
    web = catalog.create_connection(acme.id)
    secret = catalog.create_write_key(acme.id, web.id).secret
    auth = Authenticator(catalog)
    assert auth.authorize(secret, "ingest").connections == {web.id}
    for scope in ("read", "write", "admin"):
        with pytest.raises(ApiError, match="ingestion endpoints") as refused:
            auth.authorize(secret, scope)
        assert refused.value.status == 403


@pytest.mark.parametrize("secret", [None, "", "epk_unknown", "x" * 5000])
def test_a_missing_or_unknown_key_is_401(catalog: Catalog, secret) -> None:
    with pytest.raises(ApiError) as refused:
        Authenticator(catalog, ["legacy"]).authorize(secret, "read")
    assert refused.value.status == 401


def test_a_legacy_key_reads_the_whole_lake_and_nothing_more(catalog: Catalog) -> None:
    auth = Authenticator(None, ["legacy-1", "legacy-2"])
    principal = auth.authorize("legacy-2", "read")
    assert principal.connections is None and principal.workspace is None
    for scope in ("write", "admin", "ingest"):
        with pytest.raises(ApiError) as refused:
            auth.authorize("legacy-1", scope)
        assert refused.value.status == 403


def test_a_revoked_key_is_refused_within_the_cache_bound(catalog: Catalog) -> None:
    acme = catalog.create_workspace("Acme")
    key = catalog.create_api_key(acme.id, ["read"])
    clock = Clock()
    auth = Authenticator(catalog, clock=clock)
    assert auth.principal_of(key.secret) is not None  # cached from now on
    catalog.revoke_key(key.key.id)
    clock.now += DEFAULT_CACHE_SECONDS - 0.01
    assert auth.principal_of(key.secret) is not None  # the stated staleness: under 5 s
    clock.now += 0.01
    assert auth.principal_of(key.secret) is None
    clock.now += 100
    assert auth.principal_of(key.secret) is None


def test_another_process_revoking_takes_effect_without_a_restart(catalog: Catalog) -> None:
    acme = catalog.create_workspace("Acme")
    key = catalog.create_api_key(acme.id, ["read"])
    clock = Clock()
    auth = Authenticator(Catalog.in_lake(catalog.path.parent), clock=clock)
    assert auth.principal_of(key.secret) is not None
    Catalog.in_lake(catalog.path.parent).revoke_key(key.key.id)  # another Catalog object
    clock.now += DEFAULT_CACHE_SECONDS
    assert auth.principal_of(key.secret) is None


def test_a_new_connection_is_seen_by_the_workspace_keys_within_the_cache_bound(catalog) -> None:
    acme = catalog.create_workspace("Acme")
    secret = catalog.create_api_key(acme.id, ["read"]).secret
    clock = Clock()
    auth = Authenticator(catalog, clock=clock)
    assert auth.principal_of(secret).connections == frozenset()
    web = catalog.create_connection(acme.id)
    clock.now += DEFAULT_CACHE_SECONDS
    assert auth.principal_of(secret).connections == {web.id}


def test_a_damaged_catalog_is_a_503_and_cached_keys_still_work(tmp_path: Path) -> None:
    catalog = Catalog.in_lake(tmp_path)
    acme = catalog.create_workspace("Acme")
    cached = catalog.create_api_key(acme.id, ["read"]).secret
    other = catalog.create_api_key(acme.id, ["read"]).secret
    app = create_app(str(tmp_path), None, catalog=Catalog.in_lake(tmp_path))
    with running_server(app) as url:
        assert httpx.get(url + "/v1/events", headers=_bearer(cached)).status_code == 200
        for path in tmp_path.glob("_catalog.sqlite*"):
            path.write_bytes(b"not a database" * 100)
        response = httpx.get(url + "/v1/events", headers=_bearer(other))
        assert response.status_code == 503
        assert "key catalog cannot be read" in response.json()["error"]["message"]
        assert httpx.get(url + "/v1/events", headers=_bearer(cached)).status_code == 200


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_catalog_without_legacy_keys_serves_and_scopes_over_http(tmp_path: Path) -> None:
    catalog = Catalog.in_lake(tmp_path)
    acme = catalog.create_workspace("Acme")
    web = catalog.create_connection(acme.id)
    keys = {
        "read": catalog.create_api_key(acme.id, ["read"]).secret,
        "admin": catalog.create_api_key(acme.id, ["admin"]).secret,
        "event write": catalog.create_write_key(acme.id, web.id).secret,
    }
    with running_server(create_app(str(tmp_path), None, catalog=catalog)) as url:
        for path in ("/v1/events", "/v1/events/schema"):
            statuses = {
                name: httpx.get(url + path, headers={"Authorization": f"Bearer {secret}"})
                for name, secret in keys.items()
            }
            assert {n: r.status_code for n, r in statuses.items()} == {
                "read": 200,
                "admin": 403,
                "event write": 403,
            }
            error = statuses["admin"].json()["error"]
            assert error["status"] == 403 and "read" in error["message"]
        spec = httpx.get(url + "/openapi.json").json()
        for path in ("/v1/events", "/v1/events/schema"):
            assert "`read` scope" in spec["paths"][path]["get"]["description"]
