"""Acknowledged means durable: a collector SIGKILLed under concurrent load loses no request
it answered 2xx, and the import takes each exactly once (its open segment included)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import duckdb
import httpx
import pytest
from collector_support import Tenant, bearer, make_event, serve_process, wait_until

from eventpipe.io.landing import claim_closed_segments
from eventpipe.jobs.cli import main

pytestmark = pytest.mark.slow

CLIENTS = 8
KILL_AFTER = 300  # acknowledged requests before the kill


def test_sigkill_under_load_loses_no_acknowledged_request(lake: Path, tenant: Tenant) -> None:
    acked: list[list[str]] = []  # messageIds of each request answered 2xx
    lock = threading.Lock()
    stop = threading.Event()

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30, headers=bearer(tenant.write_key)) as http:
            while not stop.is_set():
                batch = [make_event() for _ in range(10)]
                try:
                    response = http.post("/v1/events", json={"batch": batch})
                except httpx.TransportError:
                    return  # the server is gone
                assert response.status_code == 200, response.text
                with lock:
                    acked.append([e["messageId"] for e in batch])

    # A long segment time: the killed writer's segment is still open.
    with serve_process(lake, "--role", "collector", "--landing-segment-seconds", "3600") as (
        url,
        process,
    ):
        threads = [threading.Thread(target=client, args=(url,)) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(acked) >= KILL_AFTER, f"{KILL_AFTER} acknowledged requests")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stop.set()
        for thread in threads:
            thread.join()

    open_segments = list((lake / "landing").glob("*.jsonl.open"))
    assert open_segments, "the killed writer's segment should still be open"
    assert main(["import", "--landing", "--lake", str(lake)]) == 0
    assert claim_closed_segments(str(lake)).paths == []  # all taken, the open one included
    assert main(["import", "--landing", "--lake", str(lake)]) == 0

    counts = dict(
        duckdb.sql(
            f"SELECT messageId, count(*) FROM read_parquet('{lake}/events/*/*.parquet') "
            "GROUP BY messageId"
        ).fetchall()
    )
    acknowledged = [m for request in acked for m in request]
    assert len(acknowledged) >= KILL_AFTER * 10
    missing = [m for m in acknowledged if m not in counts]
    assert missing == [], f"{len(missing)} acknowledged events lost"
    assert {counts[m] for m in acknowledged} == {1}  # each exactly once
    assert max(counts.values()) == 1


def test_two_collector_processes_share_one_landing_log(
    lake: Path, tenants: tuple[Tenant, Tenant]
) -> None:
    sent = []
    with (
        serve_process(lake, "--role", "collector") as (first, _),
        serve_process(lake, "--role", "collector") as (second, _),
    ):
        for i, tenant in enumerate(tenants * 3):
            batch = [make_event(), make_event()]
            sent += [e["messageId"] for e in batch]
            url = (first, second)[i % 2]
            response = httpx.post(url + "/v1/events", json=batch, headers=bearer(tenant.write_key))
            assert response.status_code == 200, response.text
    # Stopped: each process closed its own segment.
    assert len(list((lake / "landing").glob("*.jsonl"))) == 2
    assert main(["import", "--landing", "--lake", str(lake), "--no-enrich"]) == 0
    stored = duckdb.sql(f"SELECT messageId FROM read_parquet('{lake}/events/*/*.parquet')")
    assert sorted(m for (m,) in stored.fetchall()) == sorted(sent)
