"""A lake of two workspaces for the seed 001/002 tests: sessions, mixed event types,
properties, the same session ids and user ids in both workspaces, interleaved in time over
four days (three with a serving index, one without), plus events of a connection no
workspace owns."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import make_event, running_server, write_lake

from eventpipe.api.app import create_app
from eventpipe.catalog import Catalog
from eventpipe.serving.index_build import index_lake

BASE = dt.datetime(2025, 10, 1, 0, 30, tzinfo=dt.UTC)
SESSIONS = (1766272512048, 1766272512049)
TYPES = (
    "track",
    "page",
    "screen",
    "identify",
    "group",
    "alias",
    "track",
)  # odd: both sessions get each
ORPHAN_CONNECTION = 0


@dataclass
class Side:
    name: str
    workspace: Any
    connections: list[int]
    read_key: str
    write_key: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SeedWorld:
    lake: Path
    catalog: Catalog
    sides: dict[str, Side]
    orphans: list[dict[str, Any]]

    def other(self, name: str) -> Side:
        return next(s for n, s in self.sides.items() if n != name)


def seed_event(side: Side, step: int, **overrides: Any) -> dict[str, Any]:
    """Event number `step` of `side` (its kind, session, user and properties cycle)."""
    kind = TYPES[step % len(TYPES)]
    stamp = BASE + dt.timedelta(minutes=37 * step)
    row = make_event(
        messageId=f"{side.name}-m{step:05d}",
        anonymousId=f"{side.name}-anon-{step % 5}",
        userId=None if step % 3 == 0 else f"user-{step % 4}",
        connectionId=side.connections[step % 2],
        type=kind,
        event=f"event {step % 3}" if kind == "track" else None,
        name="Home" if kind in ("page", "screen") else None,
        context={"session": {"id": SESSIONS[step % 2], "start": step < 4}, "locale": "en-US"},
        properties={"path": f"/p/{step}", "n": step, "plan": ["free", "pro"][step % 2]},
        timestamp=stamp,
        receivedAt=stamp,
        sentAt=stamp,
        originalTimestamp=stamp,
    )
    row.update(overrides)
    return row


def build_seed_world(lake: Path, per_side: int = 120) -> SeedWorld:
    """Two workspaces (two connections and a read key each), `per_side` events each."""
    catalog = Catalog.in_lake(lake)
    sides: dict[str, Side] = {}
    for name in ("acme", "bolt"):
        ws = catalog.create_workspace(name.title())
        connections = [catalog.create_connection(ws.id, f"{name}-{i}").id for i in range(2)]
        sides[name] = Side(
            name,
            ws,
            connections,
            catalog.create_api_key(ws.id, ["read"]).secret,
            catalog.create_api_key(ws.id, ["write"]).secret,
        )
    orphans = []
    for step in range(per_side):
        for side in sides.values():
            side.rows.append(seed_event(side, step))
        if step % 10 == 0:
            orphan = Side("orphan", None, [ORPHAN_CONNECTION, ORPHAN_CONNECTION], "", "")
            orphans.append(seed_event(orphan, step))
    rows = [r for s in sides.values() for r in s.rows] + orphans
    write_lake(lake, rows)
    days = sorted({r["timestamp"].date() for r in rows})
    index_lake(str(lake), first=days[0], last=days[-2])  # the last day has no index
    return SeedWorld(lake, catalog, sides, orphans)


@contextlib.contextmanager
def world_client(world: SeedWorld, legacy_key: str) -> Iterator[httpx.Client]:
    """An HTTP client of a real server over `world` (its catalog, and `legacy_key`)."""
    app = create_app(str(world.lake), [legacy_key], catalog=world.catalog)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def world_fixture(name: str) -> Any:
    """A module-scoped fixture: a SeedWorld in a fresh folder `name`."""

    @pytest.fixture(scope="module")
    def world(tmp_path_factory: pytest.TempPathFactory) -> SeedWorld:
        return build_seed_world(tmp_path_factory.mktemp(name))

    return world


def client_fixture(legacy_key: str) -> Any:
    """A module-scoped fixture: a `world_client` of the module's `world`."""

    @pytest.fixture(scope="module")
    def client(world: SeedWorld) -> Iterator[httpx.Client]:
        with world_client(world, legacy_key) as c:
            yield c

    return client


# -- requests shared by the seed tests ------------------------------------------------------

START = int((BASE - dt.timedelta(days=1)).timestamp() * 1000)
END = int((BASE + dt.timedelta(days=30)).timestamp() * 1000)


def session_body(**overrides: Any) -> dict[str, Any]:
    """A seed 001 body over every event of the world, with `overrides`."""
    return {"startTimestamp": START, "endTimestamp": END, "limit": 200, "page": 1, **overrides}


def export_all(client: httpx.Client, key: str, **params: Any) -> tuple[list[dict], int]:
    """Every item of a seed 002 export followed to its end, and the number of pages."""
    items: list[dict] = []
    cursor, pages = "", 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        response = client.get(
            "/export/events", params={**params, **extra}, headers={"X-Api-Key": key}
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        items += answer["items"]
        pages += 1
        cursor = answer["nextCursor"]
        assert pages < 10_000
        if not cursor:
            return items, pages
