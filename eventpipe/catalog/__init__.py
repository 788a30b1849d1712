"""The workspace catalog: workspaces, their connections and their keys (docs/workspaces.md).

The objects in `model.py`, the pure SQLite logic in `store.py`; it imports nothing of eventpipe, so the jobs, the
collector and the read API can all use it.
"""

from eventpipe.catalog.model import (
    API_SCOPES,
    INGEST_SCOPE,
    CatalogError,
    Connection,
    Key,
    NewKey,
    Principal,
    Workspace,
)
from eventpipe.catalog.store import CATALOG_FILE, Catalog, catalog_path

__all__ = [
    "API_SCOPES",
    "CATALOG_FILE",
    "INGEST_SCOPE",
    "Catalog",
    "CatalogError",
    "Connection",
    "Key",
    "NewKey",
    "Principal",
    "Workspace",
    "catalog_path",
]
