"""Who a request is, and what it may do: bearer keys checked against the workspace
catalog and the legacy key list (docs/workspaces.md).

`Authenticator.require(scope)` is the FastAPI dependency of every endpoint: it answers
401 for a missing or unknown key, 403 for a key without `scope`, else the `Principal`,
whose `connections` restrict everything the request may read or write.

Catalog principals are cached for `cache_seconds` (default 5): a key revoked in the
catalog, by any process, is refused at most that long after the revocation commits, and
a connection created in a workspace is visible to its keys after at most that long.
Unknown keys are never cached (a key just created works at once).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Protocol

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from eventpipe.api.errors import ApiError
from eventpipe.api.limits import ServerBusy
from eventpipe.schemas.principal import (
    ANONYMOUS_PRINCIPAL,
    LEGACY_PRINCIPAL,
    WRITE_KEY,
    Principal,
)

log = logging.getLogger(__name__)

DEFAULT_CACHE_SECONDS = 5.0
MAX_CACHED_KEYS = 10_000  # a bound on memory: the cache is emptied when it is full

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A key, sent as `Authorization: Bearer <key>`: a workspace's API key "
    "(`epk_...`, scopes read/write/admin), an event write key (`epw_...`, ingestion "
    "only), or a legacy `--api-key` (read, whole lake).",
)


class PrincipalSource(Protocol):
    """What authenticates catalog keys (`eventpipe.catalog.Catalog`)."""

    def authenticate(self, secret: str) -> Principal | None: ...


def parse_api_keys(values: Iterable[str | None]) -> list[str]:
    """The non-blank keys of `--api-key` values and comma-separated lists (EVENTPIPE_API_KEYS)."""
    keys: list[str] = []
    for value in values:
        for key in (value or "").split(","):
            key = key.strip()
            if key and key not in keys:
                keys.append(key)
    return keys


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class Authenticator:
    """Keys of the catalog `catalog` (when given) and the legacy `legacy_keys` (read
    scope over the whole lake). With `insecure_no_auth` a request without a valid key is
    the anonymous whole-lake principal. `clock` (monotonic seconds) is injectable."""

    def __init__(
        self,
        catalog: PrincipalSource | None = None,
        legacy_keys: Iterable[str] = (),
        insecure_no_auth: bool = False,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._legacy = [_digest(k) for k in legacy_keys if k]
        if catalog is None and not self._legacy and not insecure_no_auth:
            raise ValueError(
                "no catalog and no API key configured (use --insecure-no-auth to serve without one)"
            )
        self.catalog = catalog
        self.insecure_no_auth = insecure_no_auth
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def principal_of(self, secret: str) -> Principal | None:
        """The principal of key `secret`; None for an unknown or revoked key. ServerBusy
        (a 503) when the catalog cannot be read; cached keys still work then."""
        if not isinstance(secret, str) or not secret:
            return None
        digest = _digest(secret)
        # Compare every legacy key, without stopping early, in constant time per key.
        if sum(hmac.compare_digest(digest, k) for k in self._legacy):
            return LEGACY_PRINCIPAL
        if self.catalog is None:
            return None
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            principal = self.catalog.authenticate(secret)
        except sqlite3.Error as exc:  # the catalog's file: locked past its timeout, damaged
            log.error("the key catalog cannot be read: %s", exc)
            raise ServerBusy(f"the key catalog cannot be read ({exc}); try again") from None
        with self._lock:
            if principal is None:
                self._cache.pop(digest, None)
            else:
                if len(self._cache) >= MAX_CACHED_KEYS:
                    self._cache.clear()
                self._cache[digest] = (now + self.cache_seconds, principal)
        return principal

    def authorize(self, secret: str | None, *scopes: str) -> Principal:
        """The principal of `secret` if it carries one of `scopes` (e.g. `ingest`, `write`
        for an ingestion endpoint); ApiError 401/403 otherwise."""
        principal = self.principal_of(secret) if secret else None
        if principal is None:
            if self.insecure_no_auth:
                return ANONYMOUS_PRINCIPAL
            if not secret:
                raise ApiError(
                    401, "Authorization", "missing bearer token (Authorization: Bearer <key>)"
                )
            raise ApiError(401, "Authorization", "invalid or revoked key")
        if not any(principal.allows(scope) for scope in scopes):
            if principal.kind == WRITE_KEY:
                message = "an event write key may only call the ingestion endpoints"
            else:
                needed = " or ".join(repr(scope) for scope in scopes)
                message = (
                    f"this key lacks the {needed} scope this endpoint needs "
                    f"(it has: {', '.join(sorted(principal.scopes))})"
                )
            raise ApiError(403, "Authorization", message)
        return principal

    def require(self, *scopes: str) -> Callable[..., Awaitable[Principal]]:
        """A FastAPI dependency: the request's principal, which must carry one of
        `scopes`."""
        if not scopes:
            raise ValueError("require() needs at least one scope")

        async def principal(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        ) -> Principal:
            return self.authorize(credentials.credentials if credentials else None, *scopes)

        return principal


def scope_note(scope: str) -> str:
    """The line an endpoint's OpenAPI description carries about its scope."""
    return f"Needs a key with the `{scope}` scope (a legacy `--api-key` has `read` only)."
