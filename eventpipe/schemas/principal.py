"""Who a request is: the contract between the catalog (which authenticates keys) and the
API (which scopes every request by it). It lives here because catalog and api are
siblings (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass

READ_SCOPE = "read"
WRITE_SCOPE = "write"
ADMIN_SCOPE = "admin"
API_SCOPES = (READ_SCOPE, WRITE_SCOPE, ADMIN_SCOPE)
INGEST_SCOPE = "ingest"  # an event write key's only power: ingestion for its connection
WRITE_KEY = "write"
API_KEY = "api"
LEGACY_KEY = "legacy"  # a --api-key / EVENTPIPE_API_KEYS key: reads the whole lake
NO_AUTH = "none"  # --insecure-no-auth: every request, unauthenticated


@dataclass(frozen=True)
class Principal:
    """The key a request carries: its kind, workspace, connection (write keys), scopes,
    and the connection ids it may see, resolved at authentication.

    `connections` is None only for the whole-lake principals (a legacy key, or a server
    run with --insecure-no-auth); a workspace's key always has a set, maybe empty.
    `workspace` is None for those too.
    """

    key_id: int
    kind: str
    workspace: int | None
    connection: int | None
    scopes: frozenset[str]
    connections: frozenset[int] | None

    def allows(self, scope: str) -> bool:
        """Whether the key carries `scope` (`ingest` for a write key)."""
        return scope in self.scopes

    def sees_connection(self, connection: int) -> bool:
        """Whether `connection` is one of the principal's (always, for the whole lake)."""
        return self.connections is None or connection in self.connections


LEGACY_PRINCIPAL = Principal(0, LEGACY_KEY, None, None, frozenset({READ_SCOPE}), None)
ANONYMOUS_PRINCIPAL = Principal(0, NO_AUTH, None, None, frozenset(API_SCOPES), None)
