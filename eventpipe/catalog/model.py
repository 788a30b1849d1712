"""The catalog's objects: workspaces, connections, keys and the principal a key names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventpipe.schemas.principal import (  # noqa: F401  (re-exported: the catalog's names)
    API_KEY,
    API_SCOPES,
    INGEST_SCOPE,
    WRITE_KEY,
    Principal,
)


class CatalogError(ValueError):
    """A request the catalog refuses (unknown workspace, duplicate slug...): the message
    says why, for the operator or the API client."""


@dataclass(frozen=True)
class Workspace:
    """A customer's space: owns connections and keys. `project_key` names it in URLs."""

    id: int
    name: str
    slug: str
    project_key: str
    created: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "projectKey": self.project_key,
            "created": self.created,
        }


@dataclass(frozen=True)
class Connection:
    """A source connection (seed 000): its int32 id is the events' `connectionId`."""

    id: int
    workspace: int
    name: str | None
    created: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workspace": self.workspace,
            "name": self.name,
            "created": self.created,
        }


@dataclass(frozen=True)
class Key:
    """A key as listings show it: never its secret, only the secret's first characters."""

    id: int
    kind: str  # WRITE_KEY (bound to `connection`) or API_KEY (bound to `workspace`)
    prefix: str
    scopes: tuple[str, ...]
    workspace: int
    connection: int | None
    created: str
    revoked: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "prefix": self.prefix,
            "scope": list(self.scopes),
            "workspace": self.workspace,
            "connection": self.connection,
            "created": self.created,
            "revoked": self.revoked,
        }


@dataclass(frozen=True)
class NewKey:
    """A key just created, with its secret: the only moment the secret exists outside
    the caller's hands."""

    key: Key
    secret: str

    def to_json(self) -> dict[str, Any]:
        shown = self.key.to_json()
        del shown["prefix"], shown["revoked"]
        return {"id": shown.pop("id"), "key": self.secret, **shown}
