"""The catalog's SQLite store: workspaces, connections and keys (docs/workspaces.md).

One SQLite file in the lake (`LAKE/_catalog.sqlite`), created on first use, in WAL mode
with a busy timeout, so several processes (CLI calls, collectors, read APIs) share it;
every write is one `BEGIN IMMEDIATE` transaction.

Keys are 32 random bytes (256 bits); only their SHA-256 is stored. A slow password hash
(bcrypt, scrypt) protects secrets a person chose, which are guessable; a random 256-bit
secret cannot be guessed, so one SHA-256 is as strong and keeps `authenticate` cheap on
every request. `authenticate` looks the hash up in an index: the secret itself is never
compared, so there is no comparison whose timing could leak it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventpipe.catalog.model import (
    API_KEY,
    API_SCOPES,
    INGEST_SCOPE,
    WRITE_KEY,
    CatalogError,
    Connection,
    Key,
    NewKey,
    Principal,
    Workspace,
)
from eventpipe.core.sqlite import write_transaction
from eventpipe.schemas.lake_layout import is_remote

CATALOG_FILE = "_catalog.sqlite"
SCHEMA_VERSION = 1
MAX_CONNECTION_ID = 2**31 - 1  # connectionId is an int32
MAX_CONNECTIONS = 1_000  # per workspace: every read query carries their ids
SECRET_PREFIX = {WRITE_KEY: "epw_", API_KEY: "epk_"}
PREFIX_LENGTH = 12  # shown in listings: the kind's prefix and 8 characters of the secret
MAX_SECRET_LENGTH = 200
MAX_NAME_LENGTH = 200
SLUG = re.compile(r"[a-z][a-z0-9-]{0,62}")

SCHEMA = """
CREATE TABLE workspaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    project_key TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE connections (
    id INTEGER PRIMARY KEY CHECK (id BETWEEN 1 AND 2147483647),
    workspace INTEGER NOT NULL REFERENCES workspaces (id),
    name TEXT,
    created TEXT NOT NULL
);
CREATE INDEX connections_workspace ON connections (workspace);
CREATE TABLE keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('write', 'api')),
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    scopes TEXT NOT NULL,
    workspace INTEGER NOT NULL REFERENCES workspaces (id),
    connection INTEGER REFERENCES connections (id),
    created TEXT NOT NULL,
    revoked TEXT,
    CHECK ((kind = 'write') = (connection IS NOT NULL))
);
CREATE INDEX keys_workspace ON keys (workspace);
"""


def catalog_path(lake: str | Path) -> Path:
    """The catalog file of a local lake folder."""
    if is_remote(lake):
        raise CatalogError(f"the catalog needs a local lake folder, not {lake}")
    return Path(lake) / CATALOG_FILE


def utc_now() -> datetime:
    return datetime.now(UTC)


def hash_secret(secret: str) -> str:
    """The stored form of a key (see the module docstring for why SHA-256 suffices)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def slug_of(name: str) -> str:
    """A URL-safe slug from a workspace name ("Acme Shop" -> "acme-shop")."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return (slug if slug[:1].isalpha() else f"w-{slug}")[:63].rstrip("-")


class Catalog:
    """The catalog file at `path`. Writes open their own SQLite connection, reads use one
    per thread, so one Catalog may serve several threads and several processes may share
    the file."""

    def __init__(
        self, path: str | Path, now: Callable[[], datetime] = utc_now, timeout: float = 30.0
    ) -> None:
        self.path = Path(path)
        self._now = now
        self._timeout = timeout
        self._ready = False
        self._local = threading.local()

    @classmethod
    def in_lake(cls, lake: str | Path, **kwargs: Any) -> Catalog:
        """The catalog of the lake folder `lake` (`LAKE/_catalog.sqlite`)."""
        return cls(catalog_path(lake), **kwargs)

    # -- connections and transactions

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():  # nothing created yet: read an empty catalog, make no file
            with closing(self._connect(":memory:")) as db:
                self._migrate(db)
                yield db
            return
        yield self._reader()

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection, kept open: `authenticate` runs on every request.
        It holds no transaction between statements, so each read sees the latest commit
        (a key revoked by another process fails its next authentication)."""
        cached = getattr(self._local, "reader", None)
        if cached is None or cached[0] != os.getpid():  # a forked child opens its own
            cached = (os.getpid(), self._open())
            self._local.reader = cached
        return cached[1]

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._open()) as db, write_transaction(db):
            yield db

    def _open(self) -> sqlite3.Connection:
        db = self._connect(self.path)
        if not self._ready:
            db.execute("PRAGMA journal_mode = WAL")
            self._migrate(db)
            self._ready = True
        return db

    def _connect(self, path: Path | str) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=self._timeout, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        with write_transaction(db):
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"{self.path} has catalog schema version {version}; this eventpipe "
                    f"knows versions up to {SCHEMA_VERSION}: upgrade eventpipe"
                )
            if version < 1:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))

    def _timestamp(self) -> str:
        return self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- workspaces

    def create_workspace(self, name: str, slug: str | None = None) -> Workspace:
        """A new workspace; its slug is `slug` or derived from `name`, and unique."""
        name = _name(name, "a workspace")
        if not name:
            raise CatalogError("a workspace needs a non-empty name")
        slug = slug_of(name) if slug is None else slug
        if not SLUG.fullmatch(slug):
            raise CatalogError(
                f"slug {slug!r} is not valid: a lower-case letter, then up to 62 lower-case "
                "letters, digits or '-'"
            )
        with self._write() as db:
            taken = db.execute("SELECT id FROM workspaces WHERE slug = ?", (slug,)).fetchone()
            if taken:
                raise CatalogError(
                    f"a workspace with slug {slug!r} exists already (id {taken['id']}); "
                    "choose another slug"
                )
            row = db.execute(
                "INSERT INTO workspaces (name, slug, project_key, created) VALUES (?, ?, ?, ?)"
                " RETURNING *",
                (name, slug, secrets.token_hex(10), self._timestamp()),
            ).fetchone()
        return _workspace(row)

    def workspaces(self) -> list[Workspace]:
        """Every workspace, by id."""
        with self._read() as db:
            return [_workspace(r) for r in db.execute("SELECT * FROM workspaces ORDER BY id")]

    def workspace(self, ref: int | str) -> Workspace:
        """The workspace of id or slug `ref`; CatalogError when there is none."""
        with self._read() as db:
            return _find_workspace(db, ref)

    # -- connections

    def create_connection(
        self, workspace: int | str, name: str | None = None, connection_id: int | None = None
    ) -> Connection:
        """A new connection of `workspace`, with a random int32 id unique in the lake, or
        with `connection_id`: an id the lake's events already carry (imported from another
        system), which this gives to `workspace`; refused when a connection has it."""
        if connection_id is not None and not 1 <= connection_id <= MAX_CONNECTION_ID:
            raise CatalogError(f"a connection id is an int32 from 1 to {MAX_CONNECTION_ID}")
        with self._write() as db:
            owner = _find_workspace(db, workspace)
            count = db.execute(
                "SELECT count(*) FROM connections WHERE workspace = ?", (owner.id,)
            ).fetchone()[0]
            if count >= MAX_CONNECTIONS:
                raise CatalogError(
                    f"workspace {owner.slug!r} has {count} connections, the most one may have"
                )
            if connection_id is None:
                candidate = _free_connection_id(db)
            elif _connection_exists(db, connection_id):
                raise CatalogError(f"connection {connection_id} exists already")
            else:
                candidate = connection_id
            row = db.execute(
                "INSERT INTO connections (id, workspace, name, created) VALUES (?, ?, ?, ?)"
                " RETURNING *",
                (candidate, owner.id, _name(name, "a connection") or None, self._timestamp()),
            ).fetchone()
        return _connection(row)

    def connections_of(self, workspace: int | str) -> list[Connection]:
        """The connections of `workspace`, by id."""
        with self._read() as db:
            owner = _find_workspace(db, workspace)
            rows = db.execute(
                "SELECT * FROM connections WHERE workspace = ? ORDER BY id", (owner.id,)
            )
            return [_connection(r) for r in rows]

    def workspace_of_connection(self, connection: int) -> Workspace | None:
        """The workspace that owns connection `connection`, None for an unknown id."""
        with self._read() as db:
            row = db.execute(
                "SELECT w.* FROM workspaces w JOIN connections c ON c.workspace = w.id"
                " WHERE c.id = ?",
                (connection,),
            ).fetchone()
        return _workspace(row) if row else None

    # -- keys

    def create_write_key(self, workspace: int | str, connection: int) -> NewKey:
        """An event write key for `connection`, which must belong to `workspace`."""
        with self._write() as db:
            owner = _find_workspace(db, workspace)
            row = db.execute("SELECT workspace FROM connections WHERE id = ?", (connection,))
            found = row.fetchone()
            if not found or found["workspace"] != owner.id:
                raise CatalogError(
                    f"workspace {owner.slug!r} (id {owner.id}) has no connection {connection}"
                )
            return self._insert_key(db, WRITE_KEY, (INGEST_SCOPE,), owner.id, connection)

    def create_api_key(self, workspace: int | str, scopes: Iterable[str]) -> NewKey:
        """An API key of `workspace` with `scopes` (some of read, write, admin)."""
        chosen = tuple(s for s in API_SCOPES if s in set(scopes))
        unknown = sorted(set(scopes) - set(API_SCOPES))
        if unknown or not chosen:
            raise CatalogError(
                f"an API key needs scopes among {', '.join(API_SCOPES)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        with self._write() as db:
            owner = _find_workspace(db, workspace)
            return self._insert_key(db, API_KEY, chosen, owner.id, None)

    def _insert_key(
        self,
        db: sqlite3.Connection,
        kind: str,
        scopes: tuple[str, ...],
        workspace: int,
        connection: int | None,
    ) -> NewKey:
        secret = SECRET_PREFIX[kind] + secrets.token_urlsafe(32)
        row = db.execute(
            "INSERT INTO keys (kind, hash, prefix, scopes, workspace, connection, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                kind,
                hash_secret(secret),
                secret[:PREFIX_LENGTH],
                ",".join(scopes),
                workspace,
                connection,
                self._timestamp(),
            ),
        ).fetchone()
        return NewKey(_key(row), secret)

    def keys_of(self, workspace: int | str) -> list[Key]:
        """The keys of `workspace`, revoked ones included, by id."""
        with self._read() as db:
            owner = _find_workspace(db, workspace)
            rows = db.execute("SELECT * FROM keys WHERE workspace = ? ORDER BY id", (owner.id,))
            return [_key(r) for r in rows]

    def revoke_key(self, key_id: int, workspace: int | str | None = None) -> Key:
        """Revoke key `key_id` (of `workspace` when given): it never authenticates again.
        Revoking a revoked key changes nothing."""
        with self._write() as db:
            row = db.execute("SELECT * FROM keys WHERE id = ?", (key_id,)).fetchone()
            owner = None if workspace is None else _find_workspace(db, workspace)
            if not row or (owner is not None and row["workspace"] != owner.id):
                raise CatalogError(
                    f"no key {key_id}" + (f" in workspace {owner.slug!r}" if owner else "")
                )
            if row["revoked"] is None:
                row = db.execute(
                    "UPDATE keys SET revoked = ? WHERE id = ? RETURNING *",
                    (self._timestamp(), key_id),
                ).fetchone()
        return _key(row)

    def authenticate(self, secret: str) -> Principal | None:
        """The principal of the unrevoked key `secret`, None for anything else; its
        `connections` are its workspace's (a write key's: its own connection)."""
        if not isinstance(secret, str) or not 0 < len(secret) <= MAX_SECRET_LENGTH:
            return None
        with self._read() as db:
            row = db.execute(
                "SELECT * FROM keys WHERE hash = ? AND revoked IS NULL", (hash_secret(secret),)
            ).fetchone()
            if not row:
                return None
            key = _key(row)
            if key.connection is not None:  # a write key sees its own connection only
                visible = frozenset({key.connection})
            else:
                rows = db.execute(
                    "SELECT id FROM connections WHERE workspace = ?", (key.workspace,)
                )
                visible = frozenset(r["id"] for r in rows)
        return Principal(
            key.id, key.kind, key.workspace, key.connection, frozenset(key.scopes), visible
        )


def _name(name: str | None, of: str) -> str:
    name = (name or "").strip()
    if len(name) > MAX_NAME_LENGTH:
        raise CatalogError(f"the name of {of} has at most {MAX_NAME_LENGTH} characters")
    return name


def _connection_exists(db: sqlite3.Connection, connection: int) -> bool:
    found = db.execute("SELECT 1 FROM connections WHERE id = ?", (connection,)).fetchone()
    return found is not None


def _free_connection_id(db: sqlite3.Connection) -> int:
    """A random int32 id no connection has."""
    while True:
        candidate = secrets.randbelow(MAX_CONNECTION_ID) + 1
        if not _connection_exists(db, candidate):
            return candidate


def _find_workspace(db: sqlite3.Connection, ref: int | str) -> Workspace:
    text = str(ref).strip()
    column, value = ("id", int(text)) if text.isdigit() else ("slug", text)
    row = db.execute(f"SELECT * FROM workspaces WHERE {column} = ?", (value,)).fetchone()
    if not row:
        raise CatalogError(f"no workspace with {column} {value!r}")
    return _workspace(row)


def _workspace(row: sqlite3.Row) -> Workspace:
    return Workspace(row["id"], row["name"], row["slug"], row["project_key"], row["created"])


def _connection(row: sqlite3.Row) -> Connection:
    return Connection(row["id"], row["workspace"], row["name"], row["created"])


def _key(row: sqlite3.Row) -> Key:
    return Key(
        row["id"],
        row["kind"],
        row["prefix"],
        tuple(row["scopes"].split(",")),
        row["workspace"],
        row["connection"],
        row["created"],
        row["revoked"],
    )
