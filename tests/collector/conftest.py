"""Fixtures of the collector tests: a lake with two workspaces and their keys, and a real
collector server on 127.0.0.1 (a socket it binds on port 0)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from eventpipe.catalog import Catalog
from eventpipe.collector.server import CollectorConfig, collector_app


@dataclass(frozen=True)
class Tenant:
    """One workspace of the test lake with its connection and keys (secrets)."""

    workspace: int
    connection: int
    write_key: str
    api_write: str
    api_read: str
    api_admin: str


def make_tenant(catalog: Catalog, name: str) -> Tenant:
    ws = catalog.create_workspace(name)
    conn = catalog.create_connection(ws.id, f"{name} site")
    return Tenant(
        ws.id,
        conn.id,
        catalog.create_write_key(ws.id, conn.id).secret,
        catalog.create_api_key(ws.id, ["write"]).secret,
        catalog.create_api_key(ws.id, ["read"]).secret,
        catalog.create_api_key(ws.id, ["admin"]).secret,
    )


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


def bound_socket() -> socket.socket:
    """A listening socket on 127.0.0.1 whose port the kernel chose."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def running_app(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a socket it binds itself; yields its URL."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        thread.join(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@pytest.fixture
def collector_url(lake: Path, tenants: tuple[Tenant, Tenant]) -> Iterator[str]:
    with running_app(collector_app(CollectorConfig(lake=str(lake)).check())) as url:
        yield url


@pytest.fixture
def http(collector_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=collector_url, timeout=30) as client:
        yield client
