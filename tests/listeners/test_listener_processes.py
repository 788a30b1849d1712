"""Listeners across server processes of one lake (their shared file), abandoned listeners
removed after `--listener-idle-seconds`, and keys without a workspace."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
from collector_support import (
    Tenant,
    landing_closed,
    make_event,
    make_tenant,
    serve_process,
    wait_until,
)
from listener_support import LISTENERS, bearer, create, read, send

from eventpipe.catalog import Catalog
from eventpipe.jobs.cli import main


def _await_listening(
    collector: httpx.Client, reader: httpx.Client, t: Tenant, listener: str
) -> None:
    """Send probe events through `collector` until `listener` (read through `reader`)
    shows one: another process sees a new listener within its refresh time (1 s)."""
    deadline = time.monotonic() + 60
    while not read(reader, t.api_admin, listener)["events"]:
        assert time.monotonic() < deadline, "the other process never observed the listener"
        send(collector, t.write_key, [make_event(event="Probe")])
        time.sleep(0.1)


def _collect(client: httpx.Client, t: Tenant, listener: str, count: int) -> list[dict]:
    seen: list[dict] = []
    deadline = time.monotonic() + 60
    while len(seen) < count:
        assert time.monotonic() < deadline, f"observed {len(seen)} of {count}"
        observed = read(client, t.api_admin, listener)
        assert observed["omitted"] == 0
        seen += [e for e in observed["events"] if e.get("event") != "Probe"]  # late probes
        time.sleep(0.05)
    return seen


def test_two_servers_of_one_lake_share_their_listeners(tmp_path: Path):
    lake = tmp_path / "lake"
    t = make_tenant(Catalog.in_lake(lake), "acme")
    with (
        serve_process(lake) as (url_a, _a),
        serve_process(lake) as (url_b, _b),
        httpx.Client(base_url=url_a, timeout=60) as a,
        httpx.Client(base_url=url_b, timeout=60) as b,
    ):
        listener = create(a, t.api_admin, size=100)
        _await_listening(b, a, t, listener)
        sent = [make_event() for _ in range(4)]
        send(b, t.write_key, sent[:2])  # accepted by B
        send(a, t.write_key, sent[2:])  # accepted by A
        seen = _collect(b, t, listener, 4)  # read through B, which did not create it
        assert sorted(e["messageId"] for e in seen) == sorted(e["messageId"] for e in sent)
        assert b.delete(f"{LISTENERS}/{listener}", headers=bearer(t.api_admin)).status_code == 204
        assert a.get(f"{LISTENERS}/{listener}", headers=bearer(t.api_admin)).status_code == 404


def test_a_collector_only_process_captures_for_a_read_api_process(tmp_path: Path):
    lake = tmp_path / "lake"
    t = make_tenant(Catalog.in_lake(lake), "acme")
    with (
        serve_process(lake, "--role", "collector") as (collector_url, _c),
        serve_process(lake, "--role", "read") as (read_url, _r),
        httpx.Client(base_url=collector_url, timeout=60) as collector,
        httpx.Client(base_url=read_url, timeout=60) as reader,
    ):
        assert collector.post(LISTENERS, json={}, headers=bearer(t.api_admin)).status_code != 200
        listener = create(reader, t.api_admin, filter=None)
        _await_listening(collector, reader, t, listener)
        sent = [make_event() for _ in range(3)]
        send(collector, t.write_key, sent)
        seen = _collect(reader, t, listener, 3)
        assert [e["messageId"] for e in seen] == [e["messageId"] for e in sent]


def test_abandoned_listeners_are_removed_after_the_idle_time(tmp_path: Path):
    lake = tmp_path / "lake"
    t = make_tenant(Catalog.in_lake(lake), "acme")
    idle = 2.0
    with (
        serve_process(lake, "--listener-idle-seconds", str(idle)) as (url, _p),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        abandoned = [create(http, t.api_admin) for _ in range(100)]
        time.sleep(idle)  # the idle time itself: every listener is older than that now
        for listener in abandoned:
            response = http.get(f"{LISTENERS}/{listener}", headers=bearer(t.api_admin))
            assert response.status_code == 404
        fresh = [create(http, t.api_admin) for _ in range(5)]  # the limit is free again
        with sqlite3.connect(lake / "_listeners.sqlite") as db:
            stored = {row[0] for row in db.execute("SELECT id FROM listeners")}
        assert not stored & set(abandoned)  # removed, not only hidden
        assert stored <= set(fresh)


def test_keys_without_a_workspace_get_a_403(tmp_path: Path):
    lake = tmp_path / "lake"
    make_tenant(Catalog.in_lake(lake), "acme")
    with (
        serve_process(lake, "--api-key", "legacy-key-0123456789", "--insecure-no-auth") as (
            url,
            _p,
        ),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        legacy = bearer("legacy-key-0123456789")
        for headers in (legacy, {}):  # a legacy key (read only), no key (--insecure-no-auth)
            response = http.post(LISTENERS, json={}, headers=headers)
            assert response.status_code == 403, response.text
            assert http.get(f"{LISTENERS}/x", headers=headers).status_code == 403
            assert http.delete(f"{LISTENERS}/x", headers=headers).status_code == 403


def test_a_listener_shows_an_event_as_get_events_returns_it_once_imported(tmp_path: Path):
    lake = tmp_path / "lake"
    t = make_tenant(Catalog.in_lake(lake), "acme")
    chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2.1 Safari/605.1.15"
    events = [
        make_event(
            userId="u-1",
            context={
                "userAgent": chrome,
                "page": {"url": "https://shop.example/a?utm_source=news&utm_medium=email"},
                "screen": {"width": 3024, "height": 1964, "density": 2},
                "session": {"id": 1766272512048},
            },
            properties={"price": 12.5, "tags": ["a"]},
        ),
        {"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}, "messageId": "m-2"},
        {"type": "page", "name": "Home", "anonymousId": "a-2", "messageId": "m-3"},
    ]
    with (
        serve_process(lake, "--landing-segment-seconds", "1") as (url, _p),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        listener = create(http, t.api_admin)
        answer = send(http, t.write_key, events, context={"locale": "it-IT"})
        assert answer["invalid"] == []
        observed = _collect(http, t, listener, 3)
        wait_until(lambda: landing_closed(lake), "the collector to close its segment")
        assert main(["import", "--landing", "--lake", str(lake)]) == 0
        response = http.get("/v1/events", params={"order": "messageId"}, headers=bearer(t.api_read))
        assert response.status_code == 200, response.text
        stored = {e["messageId"]: e for e in response.json()["events"]}
    assert len(stored) == 3
    for event in observed:
        imported = dict(stored[event["messageId"]])
        imported.pop("kpid", None)  # identity is resolved at import, after the collector
        assert event == imported


def _landing_writers(lake: Path) -> set[str]:
    """The pids of the processes that landed segments (`<time>-<random>-<pid>.jsonl...`)."""
    names = [p.name for p in (lake / "landing").iterdir() if p.is_file()]
    return {name.split(".")[0].rsplit("-", 1)[-1] for name in names}


def test_the_workers_of_one_collector_capture_for_a_read_api_process(tmp_path: Path):
    lake = tmp_path / "lake"
    t = make_tenant(Catalog.in_lake(lake), "acme")
    with (
        serve_process(lake, "--role", "collector", "--workers", "2") as (collector_url, _c),
        serve_process(lake, "--role", "read") as (read_url, _r),
        httpx.Client(base_url=read_url, timeout=60) as reader,
        httpx.Client(base_url=collector_url, timeout=60) as probe,
    ):
        listener = create(reader, t.api_admin, size=1000)
        _await_listening(probe, reader, t, listener)
        sent: list[str] = []
        deadline = time.monotonic() + 60
        # A new connection each, until both workers have accepted some (the kernel picks).
        while len(sent) < 20 or len(_landing_writers(lake)) < 2:
            assert time.monotonic() < deadline, "one worker took every connection"
            event = make_event()
            sent.append(event["messageId"])
            response = httpx.post(
                collector_url + "/v1/events", json=[event], headers=bearer(t.write_key), timeout=60
            )
            assert response.status_code == 200, response.text
        seen = _collect(reader, t, listener, len(sent))
        assert sorted(e["messageId"] for e in seen) == sorted(sent)


def test_listeners_show_the_enrichment_the_flags_ask_for(tmp_path: Path):
    lake = tmp_path / "lake"
    t = make_tenant(Catalog.in_lake(lake), "acme")
    safari = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.2.1 Safari/605.1.15"
    )
    with (
        serve_process(lake, "--ip-policy", "drop") as (url, _p),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        listener = create(http, t.api_admin)
        send(http, t.write_key, [make_event(context={"userAgent": safari})])
        (event,) = _collect(http, t, listener, 1)
    assert event["context"]["browser"]["name"] == "Safari"
    assert "ip" not in event["context"]  # as the import with --ip-policy drop stores it
