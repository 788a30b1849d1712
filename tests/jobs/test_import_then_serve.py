"""Round trip: events imported with `eventpipe import` come back, field by field, from `eventpipe serve`."""

from __future__ import annotations

import json

import httpx
import pytest
from api_support import serve_process

from eventpipe.jobs.cli import main

KEY = "roundtrip-key-123"
EVENTS = [
    {
        "type": "track",
        "event": "Workout Completed",
        "anonymousId": "3e93e10e-5ca0-4a8c-bef6-cf9197b37729",
        "userId": "802661375",
        "messageId": "82c8516b-434b-48f4-a32c-a6369e1543fd",
        "channel": "web",
        "timestamp": "2025-10-20T16:15:24.010Z",
        "properties": {
            "workout_type": "Cardio",
            "duration_minutes": 45,
            "ratio": 0.5,
            "tags": ["a", "b"],
            "n": None,
        },
        "context": {
            "app": {"name": "fit", "version": "1.2.3", "build": "42", "namespace": "com.fit"},
            "browser": {"name": "Safari", "version": "17.2.1"},
            "campaign": {
                "name": "spring",
                "source": "newsletter",
                "medium": "email",
                "term": "run",
                "content": "top",
            },
            "device": {
                "id": "d1",
                "advertisingId": "ad1",
                "adTrackingEnabled": False,
                "manufacturer": "Apple",
                "model": "MacBookPro18,1",
                "name": "mbp",
                "type": "desktop",
                "token": "tok",
            },
            "ip": "172.91.24.57",
            "library": {"name": "krenalis.js", "version": "1.0.0"},
            "locale": "en-US",
            "location": {
                "city": "Los Angeles",
                "country": "US",
                "latitude": 34.05,
                "longitude": -118.24,
                "speed": 1.5,
            },
            "network": {"bluetooth": True, "carrier": "T", "cellular": False, "wifi": True},
            "os": {"name": "macOS", "version": "14.5"},
            "page": {
                "path": "/dashboard",
                "referrer": "https://r.example",
                "search": "?q=1",
                "title": "User Dashboard",
                "url": "https://app.example.com/dashboard",
            },
            "referrer": {"id": "p1", "type": "partner"},
            "screen": {"width": 3024, "height": 1964, "density": 2},
            "session": {"id": 1766272512048, "start": True},
            "timezone": "America/Los_Angeles",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2.1 Safari/605.1.15",
        },
    },
    {
        "type": "identify",
        "userId": "u-2",
        "messageId": "m-identify",
        "timestamp": "2025-10-20T16:15:25.000Z",
        "traits": {"plan": "pro", "address": {"city": "Rome"}},
    },
    {
        "type": "page",
        "anonymousId": "anon-3",
        "messageId": "m-page",
        "category": "Docs",
        "name": "Home",
        "timestamp": "2025-10-20T16:15:26.123Z",
        "context": {"screen": {"density": 1.25}},
    },
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("roundtrip")
    (tmp / "in.jsonl").write_text("\n".join(json.dumps(e) for e in EVENTS) + "\n")
    lake = tmp / "lake"
    assert (
        main(
            [
                "import",
                str(tmp / "in.jsonl"),
                "--lake",
                str(lake),
                "--connection-id",
                "1371036433",
                "--no-enrich",
            ]
        )
        == 0
    )
    with serve_process(lake, env={"EVENTPIPE_API_KEYS": KEY}) as url:
        yield url


def _get(base: str) -> dict[str, dict]:
    reply = httpx.get(
        f"{base}/v1/events", params={"limit": 1000}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert reply.status_code == 200, reply.text
    return {e["messageId"]: e for e in reply.json()["events"]}


def test_every_imported_field_reads_back(served):
    events = _get(served)
    assert set(events) == {e["messageId"] for e in EVENTS}
    track = events["82c8516b-434b-48f4-a32c-a6369e1543fd"]
    given = EVENTS[0]
    for key in ("type", "event", "anonymousId", "userId", "channel", "properties"):
        assert track[key] == given[key], key
    assert track["connectionId"] == 1371036433
    assert track["timestamp"] == track["originalTimestamp"] == "2025-10-20T16:15:24.010Z"
    expected_context = json.loads(json.dumps(given["context"]))
    expected_context["session"]["id"] = "1766272512048"  # session id as a string, as in seed 000
    assert track["context"] == expected_context
    assert track["traits"] == {}
    assert "kpid" not in track


def test_identify_and_page_read_back(served):
    events = _get(served)
    identify = events["m-identify"]
    assert identify["traits"] == {"plan": "pro", "address": {"city": "Rome"}}
    assert identify["userId"] == "u-2" and identify["anonymousId"]  # generated from the userId
    assert "context" not in identify
    page = events["m-page"]
    assert (page["category"], page["name"]) == ("Docs", "Home")
    assert page["context"] == {"screen": {"density": 1.25}}
    assert page["timestamp"] == "2025-10-20T16:15:26.123Z"
