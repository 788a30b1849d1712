"""End to end: the `eventpipe stream` job against the real Pub/Sub emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import pubsub_v1

from eventpipe.identity.graph import KPID_MAP_SCHEMA
from eventpipe.io.pubsub_emulator import PubSubEmulator

from stream_support import make_event, read_table

pytestmark = pytest.mark.slow


def publish_all(topic: str, messages: list[tuple[bytes, dict[str, str]]]) -> None:
    publisher = pubsub_v1.PublisherClient()
    futures = [publisher.publish(topic, data, **attrs) for data, attrs in messages]
    for future in futures:
        future.result(timeout=30)


def start_job(lake: Path, subscription: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "eventpipe.jobs.cli", "stream", "--subscription", subscription,
         "--lake", str(lake), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )  # fmt: skip


def finish(job: subprocess.Popen, timeout: float = 120) -> str:
    """Wait for the job; its stdout (stderr is kept as `job.stderr_text`)."""
    try:
        out, err = job.communicate(timeout=timeout)
        job.stderr_text = err  # type: ignore[attr-defined]
    except subprocess.TimeoutExpired:
        job.kill()
        out, err = job.communicate()
        pytest.fail(f"the stream job did not stop:\n{out}\n{err[-3000:]}")
    assert job.returncode == 0, f"exit {job.returncode}:\n{out}\n{err[-3000:]}"
    return out


def run_summary(lake: Path) -> dict:
    [record] = (lake / "_runs").glob("*.json")
    return json.loads(record.read_text())


def pull_all(subscription: str) -> list:
    """Every message left in `subscription` (acked)."""
    subscriber = pubsub_v1.SubscriberClient()
    found = []
    while True:
        response = subscriber.pull(subscription=subscription, max_messages=1000, timeout=3)
        if not response.received_messages:
            return found
        found += [m.message for m in response.received_messages]
        subscriber.acknowledge(
            subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
        )


def wait_until_read(subscription: str, job: subprocess.Popen) -> None:
    """Wait until the running job has pulled (and acked) every message of `subscription`.

    A probe pull that still finds one gives it back at once (ack deadline 0), for the job.
    """
    from google.api_core.exceptions import DeadlineExceeded

    subscriber = pubsub_v1.SubscriberClient()
    while True:
        assert job.poll() is None, "the stream job ended before it read the messages"
        try:
            response = subscriber.pull(subscription=subscription, max_messages=1, timeout=1)
        except DeadlineExceeded:
            return
        if not response.received_messages:
            return
        subscriber.modify_ack_deadline(
            subscription=subscription,
            ack_ids=[m.ack_id for m in response.received_messages],
            ack_deadline_seconds=0,
        )
        time.sleep(0.2)


def test_stream_job_lands_every_message_and_stops_when_idle(
    pubsub_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    topic, subscription = pubsub_emulator.create("events-idle")
    dead_topic, dead_subscription = pubsub_emulator.create("events-dead")
    lake = tmp_path / "lake"
    kpid_map = pa.table(
        {"kind": ["user", "anonymous"], "id": ["user-3", "anon-4"], "kpid": ["k3", "k4"]},
        schema=KPID_MAP_SCHEMA,
    )
    (lake / "identity").mkdir(parents=True)
    pq.write_table(kpid_map, lake / "identity" / "kpid_map.parquet")

    now = datetime.now(UTC)
    attrs = {"connectionId": "5", "ip": "81.2.69.160"}
    messages = []
    for i in range(200):  # raw events; the attributes make the envelope
        extra = {"userId": f"user-{i}"} if i % 10 == 3 else {}
        messages.append((orjson.dumps(make_event(i, now, **extra)), attrs))
    for i in range(200, 240):  # landing envelopes of 2-event batches
        batch = [make_event(i, now), make_event(i + 1000, now)]
        envelope = {"receivedAt": now.isoformat(), "connectionId": 6, "body": {"batch": batch}}
        messages.append((orjson.dumps(envelope), {}))
    messages += [(b'{"truncated": ', attrs)] * 20
    messages += [(orjson.dumps(make_event(300 + i, now, event=...)), attrs) for i in range(10)]
    messages += messages[:30]  # published again: the same events, new Pub/Sub messages
    hour_ago = now - timedelta(hours=1)
    messages += [(orjson.dumps(make_event(400 + i, hour_ago)), attrs) for i in range(5)]
    publish_all(topic, messages)

    job = start_job(
        lake, subscription, "--stop-after-idle", "3", "--dead-letter-topic", dead_topic,
        "--allowed-lateness", "300", "--kpid-refresh-seconds", "60",
    )  # fmt: skip
    out = finish(job)

    summary = run_summary(lake)
    assert summary["reconciles"], out
    assert summary["read"] == 200 + 80 + 20 + 10 + 30 + 5
    assert summary["duplicates"] == 30
    assert summary["written"] == 285
    assert summary["late"] == 5  # an hour old: written (part of `written`), not failed
    assert summary["failed_by_reason"] == {"invalid_json": 20, "missing_property": 10}
    assert summary["failed"] == 30
    assert "read 345 = written 285 + failed 30 + duplicates 30   [OK]" in out

    events = read_table(lake, "events")
    assert len(events) == len({(e["connectionId"], e["messageId"]) for e in events}) == 285
    by_id = {e["messageId"]: e for e in events}
    assert by_id["msg-3"]["kpid"] == "k3"  # by userId
    assert by_id["msg-4"]["kpid"] == "k4"  # by anonymousId
    assert by_id["msg-5"]["kpid"] is None
    assert by_id["msg-0"]["connectionId"] == 5
    assert by_id["msg-0"]["context"]["ip"] == "81.2.69.160"
    assert by_id["msg-0"]["context"]["location"]["country"] == "GB"  # enriched
    assert by_id["msg-1200"]["connectionId"] == 6
    # Each events file has its raw/ archive (same name, same row order), for `eventpipe reprocess`.
    event_files = sorted((lake / "events").rglob("*.parquet"))
    assert [p.relative_to(lake / "events") for p in event_files] == sorted(
        p.relative_to(lake / "raw") for p in (lake / "raw").rglob("*.parquet")
    )
    for path in event_files:
        stored = pq.read_table(path, columns=["messageId"])["messageId"].to_pylist()
        archived = pq.read_table(lake / "raw" / path.relative_to(lake / "events"))
        assert [orjson.loads(p)["messageId"] for p in archived["payload"].to_pylist()] == stored
    failed = read_table(lake, "failed")
    assert len(failed) == 30
    dead = pull_all(dead_subscription)
    assert sorted(json.loads(m.data)["reason"] for m in dead) == sorted(f["reason"] for f in failed)
    assert not list((lake / "_staging").rglob("*.parquet"))
    assert pull_all(subscription) == []  # everything was read and acked


def test_late_events_land_once_in_their_own_days_partition(
    pubsub_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    """An app offline for an hour, a day, a year: its queued events are written, not failed."""
    topic, subscription = pubsub_emulator.create("events-late")
    lake = tmp_path / "lake"
    now = datetime.now(UTC)
    ages = {"on-time": timedelta(0), "hour": timedelta(hours=1), "day": timedelta(days=1),
            "year": timedelta(days=365)}  # fmt: skip
    events = [
        make_event(i, now - age, messageId=f"{name}-{i}")
        for name, age in ages.items()
        for i in range(10)
    ]
    messages = [(orjson.dumps(e), {"connectionId": "3"}) for e in events]
    publish_all(topic, messages + messages[::3])  # redeliveries (new Pub/Sub messages) of some

    job = start_job(lake, subscription, "--stop-after-idle", "3", "--no-enrich")
    out = finish(job)

    summary = run_summary(lake)
    assert summary["reconciles"], out
    redelivered = len(messages[::3])
    assert (summary["written"], summary["failed"], summary["duplicates"]) == (40, 0, redelivered)
    assert (summary["messages"], summary["read"]) == (40 + redelivered, 40 + redelivered)
    assert summary["late"] == 30
    stored = read_table(lake, "events")
    assert sorted(e["messageId"] for e in stored) == sorted(e["messageId"] for e in events)
    for name, age in ages.items():  # each in the partition of its own day (by its timestamp)
        day = (now - age).date().isoformat()
        files = [p for p in (lake / "events" / f"date={day}").glob("*.parquet")]
        ids = {m for p in files for m in pq.read_table(p, columns=["messageId"])[0].to_pylist()}
        assert {f"{name}-{i}" for i in range(10)} <= ids, (name, day)
    assert read_table(lake, "failed") == []
    # The shutdown output is the summary alone: no Beam key-coder warning, no nanobind leaks.
    assert out.splitlines()[0].startswith(f"run {summary['run_id']}: {40 + redelivered} messages")
    assert f"read {40 + redelivered} = written 40 + failed 0 + duplicates {redelivered}" in out
    assert "written late: 30" in out
    assert "nanobind" not in job.stderr_text
    assert "WARNING" not in job.stderr_text, job.stderr_text


def test_stream_job_drains_on_sigterm_and_loses_nothing(
    pubsub_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    topic, subscription = pubsub_emulator.create("events-sigterm")
    lake = tmp_path / "lake"
    job = start_job(lake, subscription, "--no-enrich", "--connection-id", "8")
    now = datetime.now(UTC)
    published = 100
    publish_all(topic, [(orjson.dumps(make_event(i, now)), {}) for i in range(published)])
    wait_until_read(subscription, job)  # its 60 s window stays open
    job.send_signal(signal.SIGTERM)
    out = finish(job)

    summary = run_summary(lake)
    assert summary["reconciles"], out
    assert pull_all(subscription) == []
    assert summary["read"] == published
    # Every message the job read was written by the drain (its window was still open).
    assert summary["written"] == len(read_table(lake, "events")) == summary["read"] > 0
    assert "SIGTERM: draining" in job.stderr_text


def wait_past(moment: float) -> None:
    """Wait until the clock (that the emulator stamps publish times with) is past `moment`."""
    while time.time() <= moment:
        time.sleep(0.05)


@pytest.mark.parametrize(("dedupe_seconds", "written"), [(3600, 1), (1, 2)])
def test_dedupe_seconds_sets_how_long_a_message_id_is_remembered(
    pubsub_emulator: PubSubEmulator, tmp_path: Path, dedupe_seconds: int, written: int
) -> None:
    topic, subscription = pubsub_emulator.create(f"events-dedupe-{dedupe_seconds}")
    lake = tmp_path / "lake"
    job = start_job(
        lake, subscription, "--no-enrich", "--connection-id", "8", "--stop-after-idle", "3",
        "--dedupe-seconds", str(dedupe_seconds), "--max-messages", "1",
    )  # fmt: skip
    event = orjson.dumps(make_event(1, datetime.now(UTC)))
    publish_all(topic, [(event, {})])
    sent = time.time()
    wait_until_read(subscription, job)
    wait_past(sent + 2)  # the copy's publish time (its stream time) is > 1 s later
    publish_all(topic, [(event, {})])  # a redelivery of the same messageId
    out = finish(job)
    summary = run_summary(lake)
    assert summary["reconciles"], out
    assert (summary["read"], summary["written"]) == (2, written)
    assert summary["duplicates"] == 2 - written
    assert [e["messageId"] for e in read_table(lake, "events")] == ["msg-1"] * written


@pytest.mark.parametrize(("max_messages", "written"), [(1000, 1), (1, 2)])
def test_max_messages_sets_the_messages_of_one_pull(
    pubsub_emulator: PubSubEmulator, tmp_path: Path, max_messages: int, written: int
) -> None:
    # Two copies of one messageId published 50 ms apart; remembered for 1 us only, they
    # are duplicates only when one pull (one batch) brings both.
    topic, subscription = pubsub_emulator.create(f"events-pull-{max_messages}")
    event = orjson.dumps(make_event(1, datetime.now(UTC)))
    publish_all(topic, [(event, {})])
    wait_past(time.time() + 0.05)
    publish_all(topic, [(event, {})])
    lake = tmp_path / "lake"
    job = start_job(
        lake, subscription, "--no-enrich", "--connection-id", "8", "--stop-after-idle", "3",
        "--dedupe-seconds", "0.000001", "--max-messages", str(max_messages),
    )  # fmt: skip
    out = finish(job)
    summary = run_summary(lake)
    assert summary["reconciles"], out
    assert (summary["read"], summary["written"], summary["duplicates"]) == (2, written, 2 - written)
