"""Fixtures of the collector tests: a lake with two workspaces and their keys, and a real
collector server on 127.0.0.1 (on a socket it binds on port 0)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from collector_support import Tenant, make_tenant, running_app

from eventpipe.catalog import Catalog
from eventpipe.collector.server import CollectorConfig, collector_app


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
def collector_config(lake: Path) -> CollectorConfig:
    return CollectorConfig(lake=str(lake), max_body_bytes=64 * 1024, max_events=50, max_depth=16)


@pytest.fixture
def http(
    collector_config: CollectorConfig, tenants: tuple[Tenant, Tenant]
) -> Iterator[httpx.Client]:
    with (
        running_app(collector_app(collector_config.check())) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client
