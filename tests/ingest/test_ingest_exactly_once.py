"""The continuous ingester takes every acknowledged event exactly once: from open and closed
segments, across a kill -9 mid-batch and a restart, and with `import --landing` in between."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from collector_support import Tenant, bearer, make_event, running_app

from eventpipe.collector.server import CollectorConfig, collector_app
from eventpipe.jobs.cli import main

from pipeline_support import kill_job_at


def _ledgers(lake: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (lake / "landing" / "_done").glob("*.json")]


def test_the_open_segment_is_tailed_and_each_event_taken_once(
    ingest: Callable, lake: Path, post: Callable, counts: Callable
) -> None:
    sent = post(5, invalid=1) + post(5)
    first = ingest(lake)
    assert first.totals.reconciles and (first.totals.read, first.totals.written) == (11, 10)
    assert list((lake / "landing").glob("*.jsonl.open")), "the segment is still open"
    [ledger] = _ledgers(lake)
    [(segment, (end, lines))] = ledger["offsets"].items()
    assert (ledger["segments"], lines) == ([], 2)
    assert end == (lake / "landing" / (segment + ".open")).stat().st_size
    sent += post(3, invalid=2)
    second = ingest(lake)
    assert (second.totals.read, second.totals.written, second.totals.failed) == (5, 3, 2)
    assert second.totals.duplicates == 0  # no byte read twice
    assert counts(lake) == dict.fromkeys(sent, 1)
    failed = counts(lake, "failed", "line")
    assert failed == {1: 1, 3: 2}  # each rejected event once, with its line in the segment
    assert ingest(lake).totals.batches == 0


def test_import_landing_finishes_what_the_ingester_started_and_neither_reads_bytes_twice(
    ingest: Callable, lake: Path, tenant: Tenant, counts: Callable
) -> None:
    sent = []

    def collector_session(n: int, ingest_between: bool = False) -> None:
        config = CollectorConfig(lake=str(lake), segment_seconds=3600).check()
        with running_app(collector_app(config)) as url:
            import httpx

            with httpx.Client(base_url=url, headers=bearer(tenant.write_key)) as http:
                for _ in range(2):
                    batch = [make_event() for _ in range(n)]
                    assert http.post("/v1/events", json={"batch": batch}).status_code == 200
                    sent.extend(e["messageId"] for e in batch)
                    if ingest_between:
                        ingest(lake)  # the first request only: the rest is left
                        ingest_between = False
        # the collector closes its segment when it stops

    collector_session(4, ingest_between=True)  # a segment the ingester read in part
    collector_session(3)  # a segment nobody read
    assert len(list((lake / "landing").glob("*.jsonl"))) == 2
    assert main(["import", "--landing", "--lake", str(lake)]) == 0
    assert counts(lake) == dict.fromkeys(sent, 1)
    assert not list((lake / "landing").glob("*.jsonl"))  # both retired
    assert ingest(lake).totals.batches == 0
    runs = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    summaries = [r for r in runs if r["job"] in ("import", "ingest")]
    assert sum(s["duplicates"] for s in summaries) == 0  # dedupe had nothing to hide
    assert sum(s["written"] for s in summaries) == len(sent)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["before-commit", "commit-renamed-first"])
def test_a_kill_mid_batch_then_a_restart_loses_and_duplicates_nothing(
    moment: str, lake: Path, post: Callable, counts: Callable, run_job: Callable, tmp_path: Path
) -> None:
    sent = post(20, invalid=2) + post(20)
    marker = tmp_path / "paused"
    kill_job_at(moment, ["ingest", "--lake", str(lake), "--once", "--no-enrich"], marker)
    held = counts(lake)
    assert set(held) <= set(sent) and max(held.values(), default=1) == 1
    sent += post(10, invalid=1)
    done = run_job("ingest", "--lake", str(lake), "--once", "--no-enrich")
    assert done.returncode == 0, done.stderr
    assert "[OK]" in done.stdout
    assert counts(lake) == dict.fromkeys(sent, 1)
    assert sum(counts(lake, "failed", "line").values()) == 3
    if moment == "commit-renamed-first":  # the killed batch was committed: recovery finished it
        assert "completed the commit of interrupted run" in done.stderr
        assert held == {}  # (the kill came after the first rename: a raw/ file)
    assert not list((lake / "_staging").iterdir())


def test_an_erasure_s_rewrite_keeps_the_ingester_s_offsets_true(
    ingest: Callable, lake: Path, tenant: Tenant, counts: Callable
) -> None:
    from eventpipe.io.landing import rewrite_landing

    config = CollectorConfig(lake=str(lake), segment_seconds=3600).check()
    gone, kept = make_event(userId="erase-me"), []
    with running_app(collector_app(config)) as url:
        import httpx

        with httpx.Client(base_url=url, headers=bearer(tenant.write_key)) as http:
            batches = ([gone, make_event()], [make_event(userId="erase-me")], [make_event()])
            for number, batch in enumerate(batches):
                assert http.post("/v1/events", json={"batch": batch}).status_code == 200
                kept += [e["messageId"] for e in batch if e.get("userId") != "erase-me"]
                if number == 0:
                    ingest(lake)  # the first request read: an offset inside the segment
    # the segment is closed: an erasure removes the person's events (one whole request)

    def edit(line: bytes) -> tuple[bytes, int]:
        if b"erase-me" not in line:
            return line, 0
        envelope = json.loads(line)
        batch = [e for e in envelope["body"]["batch"] if e.get("userId") != "erase-me"]
        envelope["body"]["batch"] = batch
        return (json.dumps(envelope).encode() + b"\n" if batch else b""), 1

    assert rewrite_landing(str(lake), edit, lambda text: False).removed == 2
    totals = ingest(lake).totals
    assert (totals.read, totals.failed, totals.duplicates) == (1, 0, 0)  # the third request
    assert set(counts(lake)) == {gone["messageId"], *kept}  # (the lake's copy: erase's job)
    assert counts(lake, "raw", "line") == {1: 2, 3: 1}  # line numbers still true
