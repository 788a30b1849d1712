"""Fixtures of the read-API tests: the canonical lake and a real uvicorn server over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import (
    API_KEY,
    CANONICAL_EVENTS,
    make_event,
    running_server,
    write_lake,
)

from eventpipe.api.app import create_app

__all__ = ["CANONICAL_EVENTS", "make_event"]


@pytest.fixture(scope="session")
def canonical_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake holding CANONICAL_EVENTS (read-only: never write into it)."""
    return write_lake(tmp_path_factory.mktemp("canonical-lake"), CANONICAL_EVENTS)


@pytest.fixture(scope="session")
def server_url(canonical_lake: Path) -> Iterator[str]:
    """Base URL of a real server over the canonical lake, accepting API_KEY."""
    with running_server(create_app(str(canonical_lake), [API_KEY])) as url:
        yield url


@pytest.fixture()
def client(server_url: str) -> Iterator[httpx.Client]:
    """An authenticated HTTP client of the canonical server."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=server_url, headers=headers, timeout=30) as c:
        yield c
