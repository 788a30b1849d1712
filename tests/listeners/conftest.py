"""Fixtures of the listener tests: a lake with two workspaces (their keys) and a real
`eventpipe serve` process on 127.0.0.1 (port 0, chosen by the kernel)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from collector_support import Tenant, make_tenant, serve_process

from eventpipe.catalog import Catalog


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def tenants(lake: Path) -> tuple[Tenant, Tenant]:
    catalog = Catalog.in_lake(lake)
    return make_tenant(catalog, "acme"), make_tenant(catalog, "globex")


@pytest.fixture
def tenant(tenants: tuple[Tenant, Tenant]) -> Tenant:
    return tenants[0]


@pytest.fixture
def http(lake: Path, tenants: tuple[Tenant, Tenant]) -> Iterator[httpx.Client]:
    """A client of one `eventpipe serve` (read API, collector and listeners)."""
    with serve_process(lake) as (url, _), httpx.Client(base_url=url, timeout=60) as client:
        yield client
