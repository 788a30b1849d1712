"""Bearer-key authentication of the read API."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from eventpipe.api.errors import ApiError

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API key, sent as `Authorization: Bearer <key>`.",
)


def parse_api_keys(values: Iterable[str | None]) -> list[str]:
    """The non-blank keys of `--api-key` values and comma-separated lists (EVENTPIPE_API_KEYS)."""
    keys: list[str] = []
    for value in values:
        for key in (value or "").split(","):
            key = key.strip()
            if key and key not in keys:
                keys.append(key)
    return keys


class BearerAuth:
    """A FastAPI dependency that accepts a request carrying one of `keys`."""

    def __init__(self, keys: Iterable[str], enabled: bool = True) -> None:
        self._keys = [k.encode() for k in keys]
        self.enabled = enabled

    def is_valid(self, key: str) -> bool:
        """Whether `key` is one of the configured keys (constant-time per key)."""
        candidate = key.encode()
        return any(hmac.compare_digest(candidate, k) for k in self._keys)

    async def __call__(
        self,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> None:
        if not self.enabled:
            return
        if credentials is None:
            raise ApiError(
                401, "Authorization", "missing bearer token (Authorization: Bearer <key>)"
            )
        if credentials.scheme.lower() != "bearer" or not self.is_valid(credentials.credentials):
            raise ApiError(401, "Authorization", "invalid API key")
