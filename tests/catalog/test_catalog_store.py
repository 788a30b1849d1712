"""The catalog's SQLite store on real files: workspaces, connections, hashed keys."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from eventpipe.catalog import CATALOG_FILE, Catalog, CatalogError, store
from eventpipe.catalog.store import MAX_CONNECTION_ID, SCHEMA_VERSION, hash_secret


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.in_lake(tmp_path / "lake")


def catalog_bytes(lake: Path) -> bytes:
    """Every byte SQLite keeps of the catalog: the file, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(lake.glob(f"{CATALOG_FILE}*")))


def test_the_catalog_is_created_on_first_write_in_wal_mode_with_its_schema_version(tmp_path):
    lake = tmp_path / "lake"
    catalog = Catalog.in_lake(lake)
    assert catalog.workspaces() == [] and catalog.authenticate("epk_x") is None
    with pytest.raises(CatalogError, match="no workspace"):
        catalog.connections_of("acme")
    assert not lake.exists()  # reading an absent catalog creates nothing
    catalog.create_workspace("Acme")
    with sqlite3.connect(lake / CATALOG_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert [w.slug for w in Catalog.in_lake(lake).workspaces()] == ["acme"]


def test_a_catalog_of_a_newer_schema_version_is_refused_not_altered(tmp_path):
    lake = tmp_path / "lake"
    Catalog.in_lake(lake).create_workspace("Acme")
    with sqlite3.connect(lake / CATALOG_FILE) as db:
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(CatalogError, match="upgrade eventpipe"):
        Catalog.in_lake(lake).workspaces()


def test_a_remote_lake_has_no_catalog():
    with pytest.raises(CatalogError, match="local lake folder"):
        Catalog.in_lake("gs://bucket/lake")


def test_create_and_list_workspaces_connections_and_keys(catalog):
    acme = catalog.create_workspace("Acme Shop")
    assert (acme.name, acme.slug) == ("Acme Shop", "acme-shop")
    assert len(acme.project_key) == 20
    web = catalog.create_connection("acme-shop", "web")
    app = catalog.create_connection(acme.id)
    write = catalog.create_write_key(acme.id, web.id)
    api = catalog.create_api_key("acme-shop", ["admin", "read"])
    assert catalog.workspaces() == [acme]
    assert catalog.workspace(str(acme.id)) == catalog.workspace("acme-shop") == acme
    assert catalog.connections_of(acme.slug) == sorted([web, app], key=lambda c: c.id)
    assert (web.name, app.name) == ("web", None)
    assert catalog.keys_of(acme.id) == [write.key, api.key]
    assert api.key.scopes == ("read", "admin")
    assert write.secret.startswith(write.key.prefix) and write.key.prefix != write.secret


@pytest.mark.parametrize(
    ("name", "slug", "message"),
    [
        ("", None, "non-empty name"),
        ("Shop", "42", "not valid"),
        ("Shop", "Upper", "not valid"),
        ("Shop", "a b", "not valid"),
        ("Acme Shop", None, "exists already"),
        ("Other", "acme-shop", "exists already"),
    ],
)
def test_a_workspace_with_a_bad_or_taken_slug_is_refused(catalog, name, slug, message):
    catalog.create_workspace("Acme Shop")
    with pytest.raises(CatalogError, match=message):
        catalog.create_workspace(name, slug)
    assert len(catalog.workspaces()) == 1


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("2024", "w-2024"),
        ("!!!", "w"),
        ("Café  Ünïcode", "caf-n-code"),
        ("7" * 100, "w-" + "7" * 61),
        ("a" * 62 + " b", "a" * 62),
    ],
)
def test_every_name_gets_a_valid_slug_that_is_not_an_id(catalog, name, slug):
    assert catalog.create_workspace(name).slug == slug


def test_names_are_bounded(catalog):
    with pytest.raises(CatalogError, match="at most 200 characters"):
        catalog.create_workspace("x" * 201)
    acme = catalog.create_workspace("x" * 200)
    with pytest.raises(CatalogError, match="at most 200 characters"):
        catalog.create_connection(acme.id, "y" * 201)
    assert catalog.connections_of(acme.id) == []


def test_connection_ids_are_positive_int32_and_name_their_workspace(catalog):
    acme, other = catalog.create_workspace("Acme"), catalog.create_workspace("Other")
    ids = {catalog.create_connection(acme.id).id for _ in range(20)}
    theirs = catalog.create_connection(other.id)
    assert len(ids) == 20 and all(1 <= i <= MAX_CONNECTION_ID for i in ids)
    assert {catalog.workspace_of_connection(i) for i in ids} == {acme}
    assert catalog.workspace_of_connection(theirs.id) == other
    assert catalog.workspace_of_connection(0) is None


@pytest.mark.parametrize("ref", ["nope", "99", 99])
def test_an_unknown_workspace_is_refused_everywhere(catalog, ref):
    catalog.create_workspace("Acme")
    for call in (
        lambda: catalog.workspace(ref),
        lambda: catalog.create_connection(ref),
        lambda: catalog.connections_of(ref),
        lambda: catalog.keys_of(ref),
        lambda: catalog.create_api_key(ref, ["read"]),
    ):
        with pytest.raises(CatalogError, match="no workspace"):
            call()


def test_keys_are_stored_only_as_hashes(tmp_path):
    lake = tmp_path / "lake"
    catalog = Catalog.in_lake(lake)
    acme = catalog.create_workspace("Acme")
    web = catalog.create_connection(acme.id)
    secrets = [
        catalog.create_write_key(acme.id, web.id).secret,
        catalog.create_api_key(acme.id, ["read", "write", "admin"]).secret,
    ]
    stored = catalog_bytes(lake)
    for secret in secrets:
        assert secret.encode() not in stored
        assert secret[12:].encode() not in stored  # not even the part after the prefix
        assert hash_secret(secret).encode() in stored
    with sqlite3.connect(lake / CATALOG_FILE) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(keys)")}
    assert "secret" not in columns and "hash" in columns


def test_a_write_key_authenticates_to_its_connection_only(catalog):
    acme = catalog.create_workspace("Acme")
    web, app = catalog.create_connection(acme.id), catalog.create_connection(acme.id)
    key = catalog.create_write_key(acme.id, web.id)
    principal = catalog.authenticate(key.secret)
    assert principal is not None
    assert (principal.kind, principal.workspace, principal.connection) == ("write", acme.id, web.id)
    assert principal.connection != app.id
    assert principal.connections == {web.id}
    assert principal.allows("ingest")
    assert not any(principal.allows(s) for s in ("read", "write", "admin"))


def test_an_api_key_authenticates_to_its_workspace_with_its_scopes(catalog):
    acme, other = catalog.create_workspace("Acme"), catalog.create_workspace("Other")
    key = catalog.create_api_key(acme.slug, ["read"])
    assert catalog.authenticate(key.secret).connections == frozenset()  # none yet: sees nothing
    web, app = catalog.create_connection(acme.id), catalog.create_connection(acme.id)
    catalog.create_connection(other.id)
    principal = catalog.authenticate(key.secret)
    assert principal is not None
    assert (principal.kind, principal.workspace, principal.connection) == ("api", acme.id, None)
    assert principal.connections == {web.id, app.id}
    assert principal.scopes == {"read"}
    assert not principal.allows("admin") and not principal.allows("ingest")


def test_a_write_key_for_a_connection_of_another_workspace_is_refused(catalog):
    acme, other = catalog.create_workspace("Acme"), catalog.create_workspace("Other")
    theirs = catalog.create_connection(other.id)
    with pytest.raises(CatalogError, match="has no connection"):
        catalog.create_write_key(acme.id, theirs.id)
    with pytest.raises(CatalogError, match="has no connection"):
        catalog.create_write_key(acme.id, 12345)
    assert catalog.keys_of(acme.id) == []


@pytest.mark.parametrize("scopes", [[], ["root"], ["read", "delete"]])
def test_an_api_key_needs_known_scopes(catalog, scopes):
    acme = catalog.create_workspace("Acme")
    with pytest.raises(CatalogError, match="scopes among read, write, admin"):
        catalog.create_api_key(acme.id, scopes)


def test_a_revoked_key_never_authenticates_and_revoking_again_changes_nothing(catalog):
    acme = catalog.create_workspace("Acme")
    kept = catalog.create_api_key(acme.id, ["read"])
    revoked = catalog.create_api_key(acme.id, ["read"])
    first = catalog.revoke_key(revoked.key.id)
    assert first.revoked is not None
    assert catalog.authenticate(revoked.secret) is None
    assert catalog.authenticate(kept.secret) is not None
    assert catalog.revoke_key(revoked.key.id) == first
    assert [k.revoked is None for k in catalog.keys_of(acme.id)] == [True, False]
    with pytest.raises(CatalogError, match="no key 999"):
        catalog.revoke_key(999)


REVOKE = """
import sys
from eventpipe.catalog import Catalog
Catalog.in_lake(sys.argv[1]).revoke_key(int(sys.argv[2]))
"""


def test_a_long_lived_catalog_sees_keys_created_and_revoked_by_other_processes(tmp_path):
    lake = tmp_path / "lake"
    server = Catalog.in_lake(lake)
    assert server.authenticate("epk_x") is None  # before the catalog exists
    other = Catalog.in_lake(lake)
    acme = other.create_workspace("Acme")
    key = other.create_api_key(acme.id, ["read"])
    assert server.authenticate(key.secret).key_id == key.key.id
    subprocess.run([sys.executable, "-c", REVOKE, str(lake), str(key.key.id)], check=True)
    assert server.authenticate(key.secret) is None


def test_one_catalog_authenticates_from_several_threads(catalog):
    acme = catalog.create_workspace("Acme")
    keys = [catalog.create_api_key(acme.id, ["read"]) for _ in range(8)]
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda k: catalog.authenticate(k.secret), keys * 25))
    assert [p.key_id for p in found] == [k.key.id for k in keys] * 25


@pytest.mark.parametrize("secret", ["", "epk_nothing", "x" * 10_000, None, 42])
def test_anything_but_a_live_key_does_not_authenticate(catalog, secret):
    acme = catalog.create_workspace("Acme")
    catalog.create_api_key(acme.id, ["read"])
    assert catalog.authenticate(secret) is None


def test_one_workspace_never_lists_or_revokes_the_others_objects(catalog):
    acme, other = catalog.create_workspace("Acme"), catalog.create_workspace("Other")
    mine = {
        acme.id: catalog.create_connection(acme.id),
        other.id: catalog.create_connection(other.id),
    }
    keys = {
        w.id: [
            catalog.create_write_key(w.id, mine[w.id].id),
            catalog.create_api_key(w.id, ["read"]),
        ]
        for w in (acme, other)
    }
    for workspace in (acme, other):
        assert catalog.connections_of(workspace.id) == [mine[workspace.id]]
        assert catalog.keys_of(workspace.id) == [k.key for k in keys[workspace.id]]
        for key in keys[workspace.id]:
            assert catalog.authenticate(key.secret).workspace == workspace.id
    with pytest.raises(CatalogError, match="in workspace 'acme'"):
        catalog.revoke_key(keys[other.id][0].key.id, workspace=acme.id)
    assert catalog.authenticate(keys[other.id][0].secret) is not None


WORKER = """
import json, sys
from eventpipe.catalog import Catalog
catalog = Catalog.in_lake(sys.argv[1])
made = []
for i in range(int(sys.argv[3])):
    w = catalog.create_workspace(f"{sys.argv[2]} {i}")
    c = catalog.create_connection(w.id)
    k = catalog.create_write_key(w.id, c.id)
    made.append([w.id, c.id, k.key.id, k.secret])
print(json.dumps(made))
"""


def test_concurrent_creates_from_several_processes_get_distinct_ids(tmp_path):
    lake, processes, each = tmp_path / "lake", 4, 15
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(lake), f"p{n}", str(each)], stdout=subprocess.PIPE
        )
        for n in range(processes)
    ]
    made = [row for w in workers for row in json.loads(w.communicate()[0])]
    assert all(w.returncode == 0 for w in workers)
    assert len(made) == processes * each
    for column in range(3):
        assert len({row[column] for row in made}) == len(made)
    catalog = Catalog.in_lake(lake)
    assert len(catalog.workspaces()) == len(made)
    for workspace, connection, key, secret in made:
        assert catalog.workspace_of_connection(connection).id == workspace
        principal = catalog.authenticate(secret)
        assert (principal.key_id, principal.workspace, principal.connection) == (
            key,
            workspace,
            connection,
        )


def test_a_workspace_has_at_most_max_connections(catalog, monkeypatch):
    monkeypatch.setattr(store, "MAX_CONNECTIONS", 3)
    acme, other = catalog.create_workspace("Acme"), catalog.create_workspace("Other")
    for _ in range(3):
        catalog.create_connection(acme.id)
    with pytest.raises(CatalogError, match="has 3 connections, the most one may have"):
        catalog.create_connection(acme.id)
    with pytest.raises(CatalogError, match="the most one may have"):
        catalog.create_connection(acme.id, connection_id=77)
    assert len(catalog.connections_of(acme.id)) == 3
    catalog.create_connection(other.id)  # the bound is per workspace
