"""Helpers of the listener tests (tests/listeners): create a listener, read it until its
events arrive (capture runs on the collector's worker thread, after the answer)."""

from __future__ import annotations

import time
from typing import Any

import httpx

LISTENERS = "/v1/events/listeners"


class Clock:
    """A settable clock (the store's unix time, the tap's monotonic time)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def event_is(name: str) -> dict[str, Any]:
    """A filter document: `event is name`."""
    return {
        "logical": "and",
        "conditions": [{"property": "event", "operator": "is", "values": [name]}],
    }


def create(client: httpx.Client, key: str, **body: Any) -> str:
    """A new listener's id (the request must succeed)."""
    response = client.post(LISTENERS, json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()["id"]


def read(client: httpx.Client, key: str, listener: str) -> dict[str, Any]:
    response = client.get(f"{LISTENERS}/{listener}", headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def read_when_observed(
    client: httpx.Client, key: str, listener: str, limit: float = 60.0
) -> dict[str, Any]:
    """The first read of `listener` that holds something (events or omitted)."""
    deadline = time.monotonic() + limit
    while True:
        observed = read(client, key, listener)
        if observed["events"] or observed["omitted"]:
            return observed
        assert time.monotonic() < deadline, "the listener observed nothing"
        time.sleep(0.05)


def send(client: httpx.Client, key: str, events: list[dict[str, Any]], **extra: Any) -> dict:
    """POST a batch; the collector's answer (which must be a 200)."""
    response = client.post("/v1/events", json={"batch": events, **extra}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()
