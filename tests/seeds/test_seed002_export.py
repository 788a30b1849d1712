"""Seed 002, `GET /export/events`: the export of a workspace's events with a signed
keyset cursor, over HTTP against a real server on a lake of two workspaces (partitions
with and without a serving index); exactly once while events arrive and the lake is
compacted and reprocessed between pages (real `eventpipe import`, `compact`,
`reprocess`); every argument check. The same requests on BigQuery:
test_seeds_on_bigquery.py."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from api_support import make_event, running_server
from seed_world import ORPHAN_CONNECTION, client_fixture, export_all, world_fixture

from eventpipe.api.app import create_app
from eventpipe.api.seeds.cursors import SECRET_FILE
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate
from eventpipe.schemas import arrow_schema

LEGACY = "legacy-export-key"


def export_order(rows: list[dict[str, Any]]) -> list[str]:
    """messageIds in the export's order: timestamp, messageId, connectionId ascending."""
    ordered = sorted(rows, key=lambda r: (r["timestamp"], r["messageId"], r["connectionId"]))
    return [r["messageId"] for r in ordered]


world = world_fixture("seed002")
client = client_fixture(LEGACY)


@pytest.mark.parametrize("side", ["acme", "bolt"])
@pytest.mark.parametrize("page_size", [1, 7, 100, 1000])
def test_the_export_is_every_event_of_the_workspace_once_in_order(world, client, side, page_size):
    mine, other = world.sides[side], world.other(side)
    items, pages = export_all(client, mine.read_key, pageSize=page_size)
    assert [i["id"] for i in items] == export_order(mine.rows)
    assert pages == -(-len(mine.rows) // page_size)  # the last page says it is the last
    text = str(items)
    assert not [r["messageId"] for r in other.rows + world.orphans if r["messageId"] in text]


def test_a_whole_lake_key_exports_every_event(world, client):
    items, _ = export_all(client, LEGACY, pageSize=50)
    everything = [r for s in world.sides.values() for r in s.rows] + world.orphans
    assert [i["id"] for i in items] == export_order(everything)


def test_the_window_is_start_inclusive_end_exclusive(world, client):
    rows = world.sides["acme"].rows
    start, end = rows[10]["timestamp"], rows[90]["timestamp"]
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    items, _ = export_all(client, world.sides["acme"].read_key, start=ms(start), end=ms(end))
    expected = [r for r in rows if start <= r["timestamp"] < end]
    assert [i["id"] for i in items] == export_order(expected)
    assert items[0]["timestamp"] == ms(start)


def test_events_select_track_names_or_types(world, client):
    key, rows = world.sides["bolt"].read_key, world.sides["bolt"].rows
    params = {"events": ["event 1", "event 2"], "pageSize": 9}
    items, _ = export_all(client, key, **params)
    assert [i["id"] for i in items] == export_order(
        [r for r in rows if r["type"] == "track" and r["event"] in ("event 1", "event 2")]
    )
    assert {i["payload"]["@type"] for i in items} == {"event 1", "event 2"}
    items, _ = export_all(client, key, events=["page", "identify"])
    assert [i["id"] for i in items] == export_order(
        [r for r in rows if r["type"] in ("page", "identify")]
    )
    mixed = client.get("/export/events", params={"events": ["page", "event 1"]},
                       headers={"X-Api-Key": key})  # fmt: skip
    assert mixed.status_code == 400 and mixed.json()["error"]["parameter"] == "events"


def test_the_items_and_metadata_follow_the_seed(world, client):
    mine = world.sides["acme"]
    response = client.get("/export/events", params={"pageSize": 8},
                          headers={"X-Api-Key": mine.read_key})  # fmt: skip
    body = response.json()
    assert set(body) == {"metadata", "items", "nextCursor"}
    assert body["metadata"] == {
        "organizationName": None,
        "organizationSlug": None,
        "workspaceName": "Acme",
        "workspaceSlug": "acme",
        "applicationName": None,
        "applicationSlug": None,
    }
    by_id = {r["messageId"]: r for r in mine.rows}
    for item in body["items"]:
        row = by_id[item["id"]]
        assert set(item) == {"id", "sessionId", "userId", "timestamp", "context", "payload"}
        assert item["sessionId"] == str(row["context"]["session"]["id"])
        assert item["userId"] == row["userId"]
        assert item["timestamp"] == int(row["timestamp"].timestamp() * 1000)
        assert item["context"]["locale"] == "en-US"
        kind = row["type"]
        assert item["payload"]["@type"] == (row["event"] if kind == "track" else kind)
        assert item["payload"]["path"] == f"/p/{int(item['id'][-5:])}"
    assert body["nextCursor"]


def test_items_of_unusual_events(tmp_path):
    """Null context and properties, a property named @type, text that needs escaping, a
    time before 1970 and sub-millisecond digits, nested context values."""
    from api_support import FULL_CONTEXT

    rows = [
        make_event(messageId="a", context=None, properties=None, userId=None,
                   timestamp=dt.datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=dt.UTC)),
        make_event(messageId="b", type="page", event=None, name="Home",
                   properties={"@type": "mine", "q": 'say "hi"\n\u00e9', "nested": {"k": [1, None]}},
                   timestamp=dt.datetime(2025, 1, 1, 0, 0, 0, 1_500, tzinfo=dt.UTC)),
        make_event(messageId="c", context=FULL_CONTEXT, properties=[1, 2], userId="u\u00fc",
                   timestamp=dt.datetime(2025, 1, 2, tzinfo=dt.UTC)),
    ]  # fmt: skip
    from api_support import write_lake

    write_lake(tmp_path, rows)
    with running_server(create_app(str(tmp_path), [LEGACY])) as url:
        items = httpx.get(f"{url}/export/events", headers={"X-Api-Key": LEGACY}).json()["items"]
    a, b, c = items
    assert a == {"id": "a", "sessionId": None, "userId": None, "timestamp": -1,
                 "context": None, "payload": {"@type": "Workout Completed"}}  # fmt: skip
    assert b["timestamp"] == 1735689600001
    assert b["payload"] == {"@type": "page", "q": 'say "hi"\n\u00e9', "nested": {"k": [1, None]}}
    assert c["payload"] == {"@type": "Workout Completed"} and c["userId"] == "u\u00fc"
    assert c["sessionId"] == "1766272512048"
    context = c["context"]
    assert context["session"] == {"id": "1766272512048", "start": True}
    assert context["browser"] == {"name": "Safari", "version": "17.2.1"}  # null left out
    assert context["screen"] == {"width": 3024, "height": 1964, "density": 2.0}
    assert context["location"]["latitude"] == 34.05 and context["network"]["wifi"] is False


def test_a_workspace_with_one_named_connection_names_the_application(tmp_path):
    from eventpipe.catalog import Catalog

    catalog = Catalog.in_lake(tmp_path)
    ws = catalog.create_workspace("Shop")
    connection = catalog.create_connection(ws.id, "E-commerce Store")
    key = catalog.create_api_key(ws.id, ["read"]).secret
    with running_server(create_app(str(tmp_path), None, catalog=catalog)) as url:
        body = httpx.get(f"{url}/export/events", headers={"X-Api-Key": key}).json()
    assert body["metadata"]["applicationName"] == "E-commerce Store"
    assert body["metadata"]["applicationSlug"] == str(connection.id)
    assert body["items"] == [] and body["nextCursor"] == ""


def _first_cursor(client: httpx.Client, key: str, **params: Any) -> str:
    response = client.get("/export/events", params={"pageSize": 5, **params},
                          headers={"X-Api-Key": key})  # fmt: skip
    return response.json()["nextCursor"]


def _refused(client: httpx.Client, key: str, parameter: str, **params: Any) -> str:
    response = client.get("/export/events", params=params, headers={"X-Api-Key": key})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["parameter"] == parameter, error
    return error["message"]


def test_a_tampered_or_foreign_cursor_is_a_400(world, client):
    acme, bolt = world.sides["acme"], world.sides["bolt"]
    cursor = _first_cursor(client, acme.read_key)
    body, mac = cursor.split(".")
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    forged = payload.replace(b'"w":%d' % acme.workspace.id, b'"w":%d' % bolt.workspace.id)
    assert forged != payload
    forged_body = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    for bad in (
        f"{forged_body}.{mac}",  # another workspace's id, old signature
        body + "." + mac[:-2] + ("AA" if not mac.endswith("AA") else "BB"),  # signature
        cursor[:-5],  # truncated
        "garbage",
        "",  # (empty: a new export, not an error)
        "é" * 10,
    ):
        if bad == "":
            continue
        assert "cursor" in _refused(client, bolt.read_key, "cursor", cursor=bad)
        _refused(client, acme.read_key, "cursor", cursor=bad)
    # acme's genuine cursor, sent with bolt's key: refused, no bolt or acme data.
    message = _refused(client, bolt.read_key, "cursor", cursor=cursor)
    assert "workspace" in message
    # A whole-lake key's cursor, sent with a workspace's key.
    other_cursor = _first_cursor(client, LEGACY)
    assert _refused(client, acme.read_key, "cursor", cursor=other_cursor)


def test_a_cursor_made_under_another_secret_is_a_400(world, client, tmp_path):
    from eventpipe.api.seeds.cursors import CursorSigner

    foreign = CursorSigner(b"x" * 32).sign({"v": 1, "w": world.sides["acme"].workspace.id})
    _refused(client, world.sides["acme"].read_key, "cursor", cursor=foreign)


def test_the_secret_is_a_private_file_of_the_lake(world, client):
    _first_cursor(client, world.sides["acme"].read_key)
    secret = world.lake / SECRET_FILE
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 32


def test_a_cursor_continues_only_its_own_export(world, client):
    key = world.sides["acme"].read_key
    cursor = _first_cursor(client, key, start=1759280000000, events=["event 1"])
    _refused(client, key, "start", cursor=cursor, start=1759280000001)
    _refused(client, key, "end", cursor=cursor, end=1859280000001)
    _refused(client, key, "events", cursor=cursor, events=["event 2"])
    for same in ({}, {"start": 1759280000000}, {"events": ["event 1"]}):
        response = client.get("/export/events", params={"cursor": cursor, **same},
                              headers={"X-Api-Key": key})  # fmt: skip
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"pageSize": 0}, "pageSize"),
        ({"pageSize": 1001}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"start": "yesterday"}, "start"),
        ({"start": 1.5}, "start"),
        ({"end": "x"}, "end"),
        ({"start": 10**17}, "start"),
        ({"end": -(10**17)}, "end"),
        ({"start": 1759280000000, "end": 1759280000000}, "end"),
        ({"start": 1759280000001, "end": 1759280000000}, "end"),
        ({"events": [""]}, "events[0]"),
        ({"events": ["x" * 257]}, "events[0]"),
        ({"events": [f"e{i}" for i in range(101)]}, "events"),
        ({"cursor": "x" * 9000}, "cursor"),
    ],
)
def test_every_argument_check_names_its_parameter(world, client, params, parameter):
    _refused(client, world.sides["acme"].read_key, parameter, **params)


def test_keys_are_checked(world, client):
    assert client.get("/export/events").status_code == 401
    response = client.get("/export/events", headers={"X-Api-Key": "epk_nope"})
    assert response.status_code == 401 and response.json()["error"]["message"]
    write = client.get("/export/events", headers={"X-Api-Key": world.sides["acme"].write_key})
    assert write.status_code == 403
    bearer = client.get("/export/events",
                        headers={"Authorization": f"Bearer {world.sides['acme'].read_key}"})  # fmt: skip
    assert bearer.status_code == 200


# -- exactly once while the lake changes ---------------------------------------------------


def cli(*args: str) -> None:
    assert main(list(args)) == 0


def lake_ids(lake: Path) -> list[str]:
    return pq.read_table(lake / "events", columns=["messageId"])["messageId"].to_pylist()


def test_every_event_that_existed_comes_once_while_events_arrive_and_days_are_rewritten(
    tmp_path,
):
    lake = tmp_path / "lake"
    for part, seed in (("a", 31), ("b", 32)):  # two imports: two files a day to compact
        generate(tmp_path / part, events=400, seed=seed, days=4)
        cli("import", str(tmp_path / part / "*"), "--lake", str(lake), "--no-enrich")
    before = set(lake_ids(lake))
    days = sorted(p.name.removeprefix("date=") for p in (lake / "events").glob("date=*"))
    assert len(before) > 300 and len(days) >= 3
    app = create_app(str(lake), [LEGACY])
    seen: list[str] = []
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:

        def page(cursor: str) -> str:
            params = {"pageSize": 40, **({"cursor": cursor} if cursor else {})}
            response = client.get("/export/events", params=params, headers={"X-Api-Key": LEGACY})
            assert response.status_code == 200, response.text
            seen.extend(i["id"] for i in response.json()["items"])
            return response.json()["nextCursor"]

        cursor = page("")
        # New events arrive: an import (old timestamps, before and after the cursor) ...
        generate(tmp_path / "c", events=200, seed=33, days=4)
        cli("import", str(tmp_path / "c" / "*"), "--lake", str(lake), "--no-enrich")
        # ... and events received after the export started, in the last day.
        late = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        day = dt.datetime.fromisoformat(days[-1]).replace(tzinfo=dt.UTC) + dt.timedelta(hours=23)
        received_late = [
            make_event(messageId=f"late-{i}", timestamp=day, receivedAt=late, connectionId=7)
            for i in range(5)
        ]
        folder = lake / "events" / f"date={days[-1]}"
        pq.write_table(pa.Table.from_pylist(received_late, schema=arrow_schema()),
                       folder / "part-late.parquet")  # fmt: skip
        cursor = page(cursor)
        cli("compact", "--lake", str(lake))  # every day rewritten as one file, indexed
        cursor = page(cursor)
        cli("reprocess", "--lake", str(lake), "--from", days[0], "--to", days[-2])
        cursor = page(cursor)
        cli("compact", "--lake", str(lake))
        while cursor:
            cursor = page(cursor)
    assert len(seen) == len(set(seen)), "an event came twice"
    assert before <= set(seen), f"{len(before - set(seen))} events that existed were missed"
    assert not [i for i in seen if i.startswith("late-")]  # received after the snapshot
    assert set(seen) <= set(lake_ids(lake))
    assert ORPHAN_CONNECTION == 0
