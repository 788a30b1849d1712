"""Fixtures of the continuous ingester's tests: a lake with a workspace and its keys, a real
collector on 127.0.0.1, and helpers that post events and count what the lake holds."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx
import pytest
from collector_support import Tenant, bearer, make_event, make_tenant, running_app

from eventpipe.catalog import Catalog
from eventpipe.collector.server import CollectorConfig, collector_app
from eventpipe.pipelines.ingester import IngestConfig, Ingester, run_loop


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def tenant(lake: Path) -> Tenant:
    return make_tenant(Catalog.in_lake(lake), "acme")


@pytest.fixture
def collector(lake: Path, tenant: Tenant) -> Iterator[httpx.Client]:
    """A collector (thread) whose segments stay open for the test: the ingester tails them."""
    config = CollectorConfig(lake=str(lake), segment_seconds=3600).check()
    with (
        running_app(collector_app(config)) as url,
        httpx.Client(base_url=url, timeout=30, headers=bearer(tenant.write_key)) as client,
    ):
        yield client


@pytest.fixture
def post(collector: httpx.Client) -> Callable[..., list[str]]:
    """post(n, invalid=0): one request of n valid events (+ invalid ones); returns the
    messageIds of the valid events, once the collector acknowledged them."""

    def post_events(n: int, invalid: int = 0) -> list[str]:
        events = [make_event() for _ in range(n)]
        bad = [make_event(event=None) for _ in range(invalid)]
        response = collector.post("/v1/events", json={"batch": events + bad})
        assert response.status_code == 200, response.text
        assert len(response.json()["invalid"]) == invalid
        return [e["messageId"] for e in events]

    return post_events


def lake_counts(lake: Path, table: str = "events", column: str = "messageId") -> dict:
    """{value of `column`: rows} of a lake table (empty when it has no file yet)."""
    if not list(lake.glob(f"{table}/*/*.parquet")):
        return {}
    return dict(
        duckdb.sql(
            f"SELECT {column}, count(*) FROM read_parquet('{lake}/{table}/*/*.parquet') GROUP BY 1"
        ).fetchall()
    )


def eventpipe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`eventpipe ARGS` as its own process (its output captured)."""
    return subprocess.run(
        [sys.executable, "-m", "eventpipe.jobs.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def ingest_once(lake: Path) -> Ingester:
    """Run the ingester in process until the landing log has nothing new (no enrichment)."""
    config = IngestConfig(str(lake), f"test-{datetime.now(UTC):%H%M%S%f}", datetime.now(UTC), None)
    ingester = Ingester(config)
    try:
        run_loop(ingester, threading.Event(), interval=0.0, once=True)
    finally:
        ingester.close()
    return ingester


@pytest.fixture
def ingest() -> Callable[[Path], Ingester]:
    return ingest_once


@pytest.fixture
def counts() -> Callable[..., dict]:
    return lake_counts


@pytest.fixture
def run_job() -> Callable[..., subprocess.CompletedProcess]:
    return eventpipe
