"""Helpers of the read-API tests: event factory, canonical events, lakes, a real server.

Imported by the tests as `api_support` (pyproject.toml puts this folder on pythonpath).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import uvicorn

from eventpipe.api.app import UVICORN_OPTIONS
from eventpipe.schemas import arrow_schema

API_KEY = "test-key-0123456789"
UTC = dt.UTC


def ts(text: str) -> dt.datetime:
    """An aware UTC datetime from ISO text."""
    return dt.datetime.fromisoformat(text).astimezone(UTC)


_counter = iter(range(1, 1_000_000))


def make_event(**overrides: Any) -> dict[str, Any]:
    """A lake row (arrow_schema() shape) of a track event; keyword arguments replace fields.

    `properties`/`traits` may be given as Python objects: they are stored as JSON text.
    """
    n = next(_counter)
    stamp = ts("2025-10-20T16:15:24.010+00:00")
    row: dict[str, Any] = {
        "kpid": None,
        "connectionId": 1371036433,
        "anonymousId": f"anon-{n}",
        "channel": None,
        "category": None,
        "context": None,
        "event": "Workout Completed",
        "groupId": None,
        "messageId": f"msg-{n:06d}",
        "name": None,
        "properties": None,
        "receivedAt": stamp,
        "sentAt": stamp,
        "originalTimestamp": stamp,
        "timestamp": stamp,
        "traits": "{}",
        "type": "track",
        "previousId": None,
        "userId": None,
    }
    row.update(overrides)
    for column in ("properties", "traits"):
        if row[column] is not None and not isinstance(row[column], str):
            row[column] = json.dumps(row[column])
    return row


FULL_CONTEXT: dict[str, Any] = {
    "app": {"name": "Fit", "version": "2.1", "build": "210", "namespace": "com.example.fit"},
    "browser": {"name": "Safari", "other": None, "version": "17.2.1"},
    "campaign": {
        "name": "fall",
        "source": "news",
        "medium": "email",
        "term": "run",
        "content": "a",
    },
    "device": {
        "id": "dev-1",
        "advertisingId": "ad-1",
        "adTrackingEnabled": True,
        "manufacturer": "Apple",
        "model": "iPhone16,2",
        "name": "phone",
        "type": "mobile",
        "token": "tok",
    },
    "ip": "172.91.24.57",
    "library": {"name": "krenalis.js", "version": "1.0.0"},
    "locale": "en-US",
    "location": {
        "city": "Los Angeles",
        "country": "US",
        "latitude": 34.05,
        "longitude": -118.25,
        "speed": 0.5,
    },
    "network": {"bluetooth": False, "carrier": "T-Mobile", "cellular": True, "wifi": False},
    "os": {"name": "macOS", "other": None, "version": "14.5"},
    "page": {
        "path": "/dashboard",
        "referrer": "https://ref.example.com/",
        "search": "?q=1",
        "title": "User Dashboard",
        "url": "https://app.example.com/dashboard",
    },
    "referrer": {"id": "r1", "type": "search"},
    "screen": {"width": 3024, "height": 1964, "density": Decimal("2.00")},
    "session": {"id": 1766272512048, "start": True},
    "timezone": "America/Los_Angeles",
    "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
}


def _canonical() -> list[dict[str, Any]]:
    """Ten events over three days, covering nulls, nested context and json shapes."""
    return [
        make_event(
            messageId="e01",
            timestamp=ts("2025-10-18T08:00:00.000+00:00"),
            userId="u1",
            kpid="9102d2a1-0714-4c13-bafd-8a38bc3d0cff",
            channel="web",
            context=FULL_CONTEXT,
            properties={
                "plan": "pro",
                "price": 10,
                "tags": ["a"],
                "flag": True,
                "address": {"city": "Rome"},
                "when": "2025-10-01T00:00:00Z",
            },
            traits={"email": "a@example.com", "age": 30},
        ),
        make_event(
            messageId="e02",
            timestamp=ts("2025-10-18T09:30:00.250+00:00"),
            userId="u2",
            event="Product Purchased",
            properties={"plan": "free", "price": "10", "flag": False, "empty": "", "nothing": None},
            context={"browser": {"name": "Chrome", "version": "120"}, "session": {"id": 7}},
        ),
        make_event(
            messageId="e03",
            timestamp=ts("2025-10-19T00:00:00.000+00:00"),
            type="page",
            event=None,
            name="Home",
            category="Docs",
            userId="u1",
            properties={"price": 9.5, "tags": [], "obj": {}},
            context={
                "ip": "2001:db8::1",
                "session": {"id": 7, "start": False},
                "screen": {"width": 390, "height": 844, "density": Decimal("3.25")},
            },
        ),
        make_event(
            messageId="e04",
            timestamp=ts("2025-10-19T12:00:00.000+00:00"),
            type="identify",
            event=None,
            userId="u3",
            traits={"plan": "pro", "address": {"city": "Paris"}},
            previousId="anon-old",
        ),
        make_event(
            messageId="e05",
            timestamp=ts("2025-10-19T12:00:00.000+00:00"),
            type="group",
            event=None,
            groupId="g1",
            userId=None,
            channel="server",
            context={"os": {"name": "Other", "other": "Haiku", "version": "1"}},
        ),
        make_event(
            messageId="e06",
            timestamp=ts("2025-10-19T23:59:59.999+00:00"),
            userId="u2",
            event="Product Purchased",
            properties={"price": 100, "plan": "Pro"},
            context={"browser": {"name": "Other", "other": "Lynx"}, "locale": ""},
        ),
        make_event(
            messageId="e07",
            timestamp=ts("2025-10-20T16:15:24.010+00:00"),
            userId="720572415",
            kpid="960ae86c-fc6e-438a-ae03-838fa6c94946",
            channel="mobile",
            properties={
                "workout_type": "Cardio",
                "duration_minutes": 45,
                "calories_burned": 380,
                "device": "Smartwatch",
            },
            context={"session": {"id": 1766272512048}, "ip": "10.0.0.1"},
        ),
        make_event(
            messageId="e08",
            timestamp=ts("2025-10-20T17:00:00.000+00:00"),
            type="screen",
            event=None,
            name="Settings",
            properties={"n": "5"},
            userId="u4",
        ),
        make_event(
            messageId="e09",
            timestamp=ts("2025-10-20T17:00:00.000+00:00"),
            type="alias",
            event=None,
            userId="u4",
            previousId="anon-9",
        ),
        make_event(
            messageId="e10",
            timestamp=ts("2025-10-20T18:00:00.000+00:00"),
            event="Signed Up",
            properties={"n": 5, "price": -1.5},
            traits={"address": {"city": "Rome"}},
        ),
    ]


CANONICAL_EVENTS: list[dict[str, Any]] = _canonical()


def write_lake(
    root: Path, rows: list[dict[str, Any]], file_name: str = "part-0.parquet", **write_options: Any
) -> Path:
    """Write `rows` into `root/events/date=.../file_name`, one file per UTC date; returns root."""
    by_day: dict[dt.date, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["timestamp"].astimezone(UTC).date(), []).append(row)
    for day, day_rows in by_day.items():
        folder = root / "events" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(day_rows, schema=arrow_schema())
        tmp = folder / (file_name + ".tmp")
        pq.write_table(table, tmp, **write_options)
        tmp.rename(folder / file_name)
    return root


@contextlib.contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Run `app` on a real uvicorn server on 127.0.0.1 in a thread; yields the base URL.

    The server binds port 0 (a free port the kernel picks) and the port is read back from
    its listening socket: no port is picked here and released before the server binds it.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **UVICORN_OPTIONS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


LISTENING = re.compile(rb"serving .* on (http://127\.0\.0\.1:\d+)")  # serve binds, then logs
READY = b"Application startup complete"  # uvicorn listens on that socket from here on


@contextlib.contextmanager
def serve_process(lake: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `eventpipe serve --lake LAKE --port 0 ARGS` as its own process; yields its URL.

    The server binds a free port itself and logs it ("serving ... on URL"): the URL is
    read from its log once uvicorn is ready, so no other process can take the port between
    picking and binding.
    """
    command = [sys.executable, "-m", "eventpipe.jobs.cli", "serve", "--lake", str(lake)]
    # Its log goes to a file: a pipe nobody reads fills up (long URLs in the access log)
    # and blocks the server.
    with tempfile.NamedTemporaryFile() as output:
        process = subprocess.Popen(
            [*command, "--port", "0", *args],
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not (
                READY in (log := Path(output.name).read_bytes())
                and (found := LISTENING.search(log))
            ):
                if process.poll() is not None:
                    raise AssertionError(Path(output.name).read_text(errors="replace"))
                assert time.monotonic() < deadline, "eventpipe serve did not start"
                time.sleep(0.05)
            url = found.group(1).decode()
            httpx.get(url + "/openapi.json", timeout=30).raise_for_status()
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def raw_get(url: str, target: str) -> tuple[int, dict]:
    """GET `target` (path and query) with the test key, through http.client (httpx refuses
    query strings over 64 KB); returns the status and the JSON body."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", target, headers={"Authorization": f"Bearer {API_KEY}"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def list_ids(client: httpx.Client, **params: Any) -> list[str]:
    """messageIds returned by GET /v1/events (filter given as a dict is JSON-encoded)."""
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    response = client.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    return [e["messageId"] for e in response.json()["events"]]
