"""`--landing pubsub`: each accepted request is published (and acknowledged by Pub/Sub)
before the answer, and `eventpipe stream` lands the envelopes (real Pub/Sub emulator)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from collector_support import Tenant, bearer, make_event, running_app

from eventpipe.collector.server import CollectorConfig, collector_app
from eventpipe.io.pubsub_emulator import EMULATOR, PubSubEmulator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator() -> Iterator[PubSubEmulator]:
    if not EMULATOR.exists():
        pytest.fail(f"the Pub/Sub emulator is not installed at {EMULATOR}")
    with PubSubEmulator() as running:
        yield running


def test_pubsub_landing_then_stream(emulator: PubSubEmulator, lake: Path, tenant: Tenant) -> None:
    topic, subscription = emulator.create("collector-landing")
    config = CollectorConfig(lake=str(lake), landing="pubsub", topic=topic).check()
    sent = []
    with running_app(collector_app(config)) as url, httpx.Client(base_url=url) as http:
        batch = [make_event(), make_event(type="page", event=None)]
        single = make_event()
        invalid = make_event(event=None)
        requests = [
            ("/v1/events", {"batch": batch}),
            ("/v1/events", single),
            ("/v1/events", [invalid]),
            ("/v1/track", {"event_name": "Signed Up", "messageId": "track-1", "plan": "pro"}),
        ]
        for path, body in requests:
            response = http.post(path, json=body, headers=bearer(tenant.write_key))
            assert response.status_code == 200, response.text
        sent = [e["messageId"] for e in (*batch, single)] + ["track-1"]
    assert not (lake / "landing").exists()  # nothing landed in files

    job = subprocess.run(
        [sys.executable, "-m", "eventpipe.jobs.cli", "stream", "--subscription", subscription,
         "--lake", str(lake), "--stop-after-idle", "3", "--no-enrich"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert job.returncode == 0, job.stdout + job.stderr[-3000:]
    [record] = (lake / "_runs").glob("*.json")
    summary = json.loads(record.read_text())
    assert (summary["written"], summary["failed"]) == (4, 1), job.stdout
    stored = duckdb.sql(
        f"SELECT messageId, connectionId, context.ip FROM read_parquet('{lake}/events/*/*.parquet')"
    ).fetchall()
    assert sorted(m for m, _, _ in stored) == sorted(sent)
    assert {(c, ip) for _, c, ip in stored} == {(tenant.connection, "127.0.0.1")}
