"""Rows written to the lake come back from GET /v1/events field for field."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import (
    API_KEY,
    CANONICAL_EVENTS,
    FULL_CONTEXT,
    make_event,
    running_server,
    write_lake,
)

from eventpipe.api.app import create_app
from eventpipe.schemas import BROWSER_NAMES, EVENT_FIELDS, EVENT_TYPES, OS_NAMES, Field

_TEXT = ["", "a", "Zoë", "東京", "emoji 🎉", "quote ' and \" and \\", "x" * 300, "line\nbreak"]


def _random_value(f: Field, rng: random.Random) -> Any:
    if f.kind == "object":
        if rng.random() < 0.3:
            return None
        return {c.name: _random_value(c, rng) if rng.random() < 0.6 else None for c in f.children}
    if f.kind == "int":
        bits = f.bit_size or 64
        return rng.choice([0, 1, -1, 2 ** (bits - 1) - 1, -(2 ** (bits - 1)), rng.randrange(1000)])
    if f.kind == "float":
        return rng.choice(
            [0.0, -0.5, 1e-7, 123.456, 1.7976931348623157e308, rng.uniform(-180, 180)]
        )
    if f.kind == "decimal":
        return Decimal(rng.randrange(0, 1000)) / 100
    if f.kind == "boolean":
        return rng.random() < 0.5
    if f.kind == "datetime":
        base = dt.datetime(2025, 10, 18, tzinfo=dt.UTC)
        return base + dt.timedelta(milliseconds=rng.randrange(3 * 86_400_000))
    if f.kind == "uuid":
        return str(__import__("uuid").UUID(int=rng.getrandbits(128)))
    if f.kind == "ip":
        return rng.choice(["10.0.0.1", "2001:db8::1", "::1", "255.255.255.255"])
    if f.kind == "json":
        return json.dumps(
            rng.choice(
                [
                    {},
                    {"a": 1},
                    {"nested": {"list": [1, "two", None, True, 2.5]}, "s": rng.choice(_TEXT)},
                    {"big": 2**53, "neg": -1e-3, "unicode": "€"},
                ]
            )
        )
    if f.values:
        return rng.choice(f.values)
    return rng.choice(_TEXT)


def random_rows(count: int, seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        overrides = {}
        for f in EVENT_FIELDS:
            if f.read_optional and rng.random() < 0.3:
                overrides[f.name] = None
            else:
                overrides[f.name] = _random_value(f, rng)
        overrides["messageId"] = f"r{i:04d}"
        overrides["type"] = rng.choice(EVENT_TYPES)
        if overrides["context"]:
            browser = overrides["context"]["browser"]
            if browser:
                browser["name"] = rng.choice(BROWSER_NAMES)
            os_ = overrides["context"]["os"]
            if os_:
                os_["name"] = rng.choice(OS_NAMES)
        rows.append(make_event(**overrides))
    return rows


ROWS = [*CANONICAL_EVENTS, make_event(messageId="full", context=FULL_CONTEXT), *random_rows(300)]


def _normal(f: Field, value: Any) -> Any:
    """A lake value in comparable form: empty objects as None, json parsed."""
    if value is None:
        return None
    if f.kind == "object":
        out = {c.name: _normal(c, value.get(c.name)) for c in f.children}
        return out if any(v is not None for v in out.values()) else None
    if f.kind == "json":
        return json.loads(value)
    if f.kind == "datetime":
        return value.astimezone(dt.UTC)
    return value


def _from_api(f: Field, value: Any, path: str) -> Any:
    """The lake value an API value stands for."""
    if value is None:
        return None
    if f.kind == "object":
        out = {c.name: _from_api(c, value.get(c.name), f"{path}.{c.name}") for c in f.children}
        assert set(value) <= {c.name for c in f.children}, path
        assert any(v is not None for v in out.values()), f"{path}: empty object returned"
        return out
    if f.kind == "datetime":
        assert value.endswith("Z"), path
        return dt.datetime.fromisoformat(value)
    if f.kind == "decimal":
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-(f.scale or 0)))
    if path == "context.session.id":
        assert isinstance(value, str), path
        return int(value)
    return value


@pytest.fixture(scope="module")
def roundtrip_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lake = write_lake(tmp_path_factory.mktemp("roundtrip-lake"), ROWS)
    with running_server(create_app(str(lake), [API_KEY])) as url:
        yield url


def test_every_field_reads_back_equal(roundtrip_url: str) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    response = httpx.get(f"{roundtrip_url}/v1/events", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200
    events = {e["messageId"]: e for e in response.json()["events"]}
    assert len(events) == len(ROWS)
    for row in ROWS:
        event = events[row["messageId"]]
        assert "traits" in event
        for f in EVENT_FIELDS:
            if f.name == "traits" and row["traits"] == "{}":
                assert event["traits"] == {}
                continue
            expected = _normal(f, row[f.name])
            got = _from_api(f, event.get(f.name), f.name)
            assert got == expected, (row["messageId"], f.name)
            if expected is None:
                assert f.name not in event, (row["messageId"], f.name)


def test_sub_millisecond_precision_is_truncated(tmp_path: Path) -> None:
    stamp = dt.datetime(2025, 10, 20, 16, 15, 24, 10_999, tzinfo=dt.UTC)
    lake = write_lake(tmp_path, [make_event(messageId="us", receivedAt=stamp)])
    with running_server(create_app(str(lake), None, insecure_no_auth=True)) as url:
        event = httpx.get(f"{url}/v1/events").json()["events"][0]
    assert event["receivedAt"] == "2025-10-20T16:15:24.010Z"
