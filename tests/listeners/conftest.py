"""Fixtures of the listener tests: one lake and one real `eventpipe serve` process (read
API, collector and listener routes, on 127.0.0.1, port chosen by the kernel) per module,
and fresh workspaces with their keys per test, so that no test sees another's listeners."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from collector_support import Tenant, make_tenant, serve_process

from eventpipe.catalog import Catalog

_names = itertools.count()


@pytest.fixture(scope="module")
def shared_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("listeners") / "lake"
    Catalog.in_lake(lake).create_workspace("bootstrap")  # serve needs a catalog file
    return lake


@pytest.fixture(scope="module")
def http(shared_lake: Path) -> Iterator[httpx.Client]:
    """A client of one `eventpipe serve` of the module's lake."""
    with (
        serve_process(shared_lake) as (url, _process),
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client


@pytest.fixture
def new_tenant(shared_lake: Path):
    """Makes a fresh workspace of the module's lake, with a connection and its keys."""
    catalog = Catalog.in_lake(shared_lake)
    return lambda: make_tenant(catalog, f"ws-{next(_names)}")


@pytest.fixture
def tenant(new_tenant) -> Tenant:
    return new_tenant()
