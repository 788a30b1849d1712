"""What the ingester writes is read at once: by GET /v1/events beside a serving index built
before it, and by the dedupe of the next batches (a re-sent event is a duplicate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from collector_support import Tenant, bearer, make_event, running_app

from eventpipe.api.app import create_app
from eventpipe.catalog import Catalog
from eventpipe.jobs.cli import main


def test_get_sees_ingested_events_beside_a_partition_s_serving_index(
    ingest: Callable, lake: Path, tenant: Tenant, post: Callable
) -> None:
    first = post(5)
    ingest(lake)
    assert main(["compact", "--lake", str(lake)]) == 0  # one file a day, and its index
    assert list(lake.glob("_index/events/date=*/order-*.arrow"))
    later = post(4)
    ingest(lake)  # a file the index was not built from
    app = create_app(str(lake), [], catalog=Catalog.in_lake(lake))
    with running_app(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        answer = http.get("/v1/events", params={"limit": 100}, headers=bearer(tenant.api_read))
    assert answer.status_code == 200, answer.text
    assert sorted(e["messageId"] for e in answer.json()["events"]) == sorted(first + later)


def test_an_event_sent_again_in_a_later_batch_is_a_duplicate(
    ingest: Callable, lake: Path, collector: httpx.Client, counts: Callable
) -> None:
    event = make_event()
    for _ in range(2):
        answer = collector.post("/v1/events", json={"batch": [event, make_event()]})
        assert answer.status_code == 200
        totals = ingest(lake).totals
        assert totals.read == 2 and totals.reconciles
    assert (totals.written, totals.duplicates) == (1, 1)  # the second batch's copy: dropped
    assert counts(lake)[event["messageId"]] == 1 and len(counts(lake)) == 3


def test_the_periodic_compaction_folds_the_batches_files_raw_included(
    ingest: Callable, lake: Path, post: Callable, counts: Callable
) -> None:
    from eventpipe.jobs.ingest import _Compaction

    sent = []
    compaction = _Compaction(str(lake), minutes=1e-9)
    for _ in range(3):
        sent += post(4)
        compaction.days.update(ingest(lake).days_written)
    for table in ("events", "raw"):
        assert len(list(lake.glob(f"{table}/date=*/*.parquet"))) == 3  # a file per batch
    compaction()
    for table in ("events", "raw"):
        assert len(list(lake.glob(f"{table}/date=*/*.parquet"))) == 1, table
    assert counts(lake) == dict.fromkeys(sent, 1)
    assert counts(lake, "raw", "line") == {1: 4, 2: 4, 3: 4}  # every archived event once
