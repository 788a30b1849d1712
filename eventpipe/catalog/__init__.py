"""The workspace catalog: workspaces, their connections and their keys (docs/workspaces.md).

Pure SQLite logic in `store.py`; it imports nothing of eventpipe, so the jobs, the
collector and the read API can all use it.
"""

from eventpipe.catalog.store import (
    API_SCOPES,
    CATALOG_FILE,
    INGEST_SCOPE,
    Catalog,
    CatalogError,
    Connection,
    Key,
    NewKey,
    Principal,
    Workspace,
    catalog_path,
)

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
