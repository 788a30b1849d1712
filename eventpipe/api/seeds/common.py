"""What the seed adapters share: the catalog they read, times in epoch milliseconds, and
where their keys come from."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from eventpipe.api.errors import ApiError
from eventpipe.schemas.principal import Principal
from eventpipe.serving.event_query import epoch_microseconds

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last datetime there is
MIN_EPOCH_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z


class WorkspaceSource(Protocol):
    """What the adapters read of the workspace catalog (`eventpipe.catalog.Catalog`)."""

    def workspace(self, ref: int | str) -> Any: ...

    def workspaces(self) -> list[Any]: ...

    def connections_of(self, workspace: int | str) -> list[Any]: ...


def from_epoch_ms(value: int) -> dt.datetime:
    """Milliseconds since the epoch as an aware UTC datetime."""
    return EPOCH + dt.timedelta(milliseconds=value)


def epoch_ms(value: dt.datetime) -> int:
    """An aware datetime as whole milliseconds since the epoch (floored)."""
    return epoch_microseconds(value) // 1000


def iso_ms(value: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC text, for a filter document."""
    return from_epoch_ms(value).isoformat(timespec="microseconds")


def key_of(*candidates: str | None) -> str | None:
    """The first key given (headers in the seed's order of preference)."""
    return next((c for c in candidates if c), None)


def bearer(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header."""
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


def workspace_of(catalog: WorkspaceSource | None, principal: Principal) -> Any | None:
    """The catalog's workspace of `principal` (None for a whole-lake key or no catalog)."""
    if catalog is None or principal.workspace is None:
        return None
    return catalog.workspace(principal.workspace)


def project_scope(
    catalog: WorkspaceSource | None, principal: Principal, project_key: str
) -> frozenset[int] | None:
    """The connections a request for project `project_key` reads: the key's workspace's
    when that is the project's, every connection of the project's workspace for a whole-lake
    key; ApiError 404 otherwise (an unknown project looks like another workspace's)."""
    missing = ApiError(404, "projectKey", "no such project for this key")
    if catalog is None:
        raise missing
    if principal.workspace is not None:
        workspace = catalog.workspace(principal.workspace)
        if workspace.project_key != project_key:
            raise missing
        return principal.connections
    found = next((w for w in catalog.workspaces() if w.project_key == project_key), None)
    if found is None:
        raise missing
    return frozenset(c.id for c in catalog.connections_of(found.id))


_Model = TypeVar("_Model", bound=BaseModel)
MAX_BODY_BYTES = 64 * 1024


def parameter_of(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as the parameter it names: `filters[0].name`."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "body"


def parse_body(model: type[_Model], raw: bytes) -> _Model:
    """The JSON body `raw` as `model`; ApiError 400 naming the first field at fault."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body", f"is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "body", "must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ApiError(400, parameter_of(tuple(first["loc"])), first["msg"]) from None
