"""Seeds 001 and 002 served from BigQuery (the emulator) give the same answers as from
the lake: the same requests to two real servers over the same events, one per backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_support import running_server
from bq_emulator import bigquery_table
from seed_world import SESSIONS, START, SeedWorld, build_seed_world, export_all
from seed_world import session_body as body

from eventpipe.api.app import create_app
from eventpipe.api.bigquery_backend import BigQueryReader


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SeedWorld:
    return build_seed_world(tmp_path_factory.mktemp("seeds-bq"), per_side=60)


@pytest.fixture(scope="module")
def events_table(world: SeedWorld, bq_client, bq_endpoint) -> Iterator[str]:
    with bigquery_table(bq_client, bq_endpoint, world.lake) as table:
        yield table


@pytest.fixture(scope="module")
def clients(world, events_table, bq_endpoint) -> Iterator[dict[str, httpx.Client]]:
    lake_app = create_app(str(world.lake), None, catalog=world.catalog)
    bq_app = create_app(None, None, reader=BigQueryReader(events_table, bq_endpoint),
                        catalog=world.catalog)  # fmt: skip
    with (
        running_server(lake_app) as lake_url,
        running_server(bq_app) as bq_url,
        httpx.Client(base_url=lake_url, timeout=120) as lake,
        httpx.Client(base_url=bq_url, timeout=120) as bq,
    ):
        yield {"lake": lake, "bigquery": bq}


REQUESTS = [
    {},
    {"sortOrder": "asc", "columns": ["context", "receivedAt", "traits"]},
    {"limit": 7, "page": 3},
    {"sortBy": "userId", "sortOrder": "asc", "limit": 9, "page": 2},
    {"filters": [{"name": "plan", "operator": "is", "value": ["pro"], "isEvent": True}]},
    {"filters": [{"name": "n", "operator": "lessThan", "value": ["30"], "isEvent": True,
                  "dataType": "number"}, {"name": "type", "operator": "isNot", "value": ["track"]}]},
    {"startTimestamp": START + 86_400_000 * 2, "endTimestamp": START + 86_400_000 * 3},
]  # fmt: skip


@pytest.mark.parametrize("side", ["acme", "bolt"])
@pytest.mark.parametrize("request_body", REQUESTS)
def test_session_events_are_the_same_on_both_backends(world, clients, side, request_body):
    mine = world.sides[side]
    answers = {}
    for name, client in clients.items():
        for session in SESSIONS:
            response = client.post(
                f"/public/{mine.workspace.project_key}/sessions/{session}/events",
                json=body(**request_body), headers={"Authorization": f"Bearer {mine.read_key}"},
            )  # fmt: skip
            assert response.status_code == 200, response.text
            answers.setdefault(name, []).append(response.json())
    assert answers["lake"] == answers["bigquery"]
    assert any(a["data"]["events"] for a in answers["lake"])


@pytest.mark.parametrize("side", ["acme", "bolt"])
@pytest.mark.parametrize(
    "params", [{"pageSize": 7}, {"pageSize": 1000, "events": ["event 1"]},
               {"pageSize": 5, "start": 1759300000000, "end": 1759500000000}],
)  # fmt: skip
def test_the_export_is_the_same_on_both_backends(world, clients, side, params):
    key = world.sides[side].read_key
    lake, pages = export_all(clients["lake"], key, **params)
    bigquery, bq_pages = export_all(clients["bigquery"], key, **params)
    assert lake and lake == bigquery and pages == bq_pages
