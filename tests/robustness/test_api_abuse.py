"""Hostile requests against a real `eventpipe serve` process: a 4xx or a 503 with a message,
never a 500, and the server's memory stays bounded (issue #12, items 10, 12 and 13)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
import psutil
import pytest
from api_support import API_KEY, make_event, raw_get, running_server, serve_process, write_lake

from eventpipe.api import query as query_module
from eventpipe.api.app import create_app
from eventpipe.api.filters import MAX_FILTER_VALUES, compile_filter
from eventpipe.api.limits import Deadline, ServingLimits
from eventpipe.api.query import EventQuery, LakeReader

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
DAYS = 4
EVENTS_PER_DAY = 1_500
MEMORY_LIMIT_MB = 256


def _one_of(count: int, values: list[str], logical: str = "or") -> str:
    """`count` conditions `properties.pK is one of values`."""
    conditions = [
        {"property": f"properties.p{k}", "operator": "is one of", "values": values}
        for k in range(count)
    ]
    return json.dumps({"logical": logical, "conditions": conditions})


def _heavy_filter() -> str:
    """100 json `contains` conditions: every row's JSON parsed 100 times."""
    conditions = [
        {"property": f"properties.p{k % 3}", "operator": "contains", "values": [f"x{k}"]}
        for k in range(100)
    ]
    return json.dumps({"logical": "or", "conditions": conditions})


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DAYS days of EVENTS_PER_DAY events with numeric and text json properties."""
    start = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(DAYS * EVENTS_PER_DAY):
        stamp = start + dt.timedelta(seconds=i * 86_400 // EVENTS_PER_DAY)
        properties = {"p0": 1000 + i % 2000, "p1": str(i % 700), "p2": i % 3 == 0, "plan": "pro"}
        rows.append(make_event(messageId=f"m{i:06d}", timestamp=stamp, properties=properties))
    return write_lake(tmp_path_factory.mktemp("abuse-lake"), rows)


def _hostile_requests() -> list[tuple[str, str, int]]:
    """(name, query string, expected status) of every hostile request tried."""
    numbers = [str(1000 + i) for i in range(1000)]
    texts = [f"v{i}" for i in range(1000)]

    def one(prop: str, operator: str, values: list[str]) -> str:
        condition = {"property": prop, "operator": operator, "values": values}
        return json.dumps({"logical": "and", "conditions": [condition]})  # escapes surrogates

    cases = [
        ("issue 10: 3 x 1,000 json numbers, or", _one_of(3, numbers), 200),
        ("3 x 1,000 json texts, or", _one_of(3, texts), 200),
        ("3 x 1,000 json numbers, and", _one_of(3, numbers, "and"), 200),
        ("1,000 userIds", _one_of(1, texts).replace("properties.p0", "userId"), 200),
        ("3,001 values", _one_of(4, numbers[:751]), 400),
        ("101 conditions", _one_of(101, ["1"]), 400),
        ("lone surrogate value", one("userId", "is", ["\ud800"]), 400),
        ("lone surrogate json value", one("properties.p1", "is one of", ["1", "\udfff"]), 400),
        ("lone surrogate json key", one("properties.\udfff", "exists", []), 400),
        ("deeply nested JSON", "[" * 20_000 + "]" * 20_000, 400),
        ("over 64 KB", json.dumps({"logical": "and", "conditions": [{"v": "x" * 70_000}]}), 400),
    ]
    return [(name, "filter=" + urllib.parse.quote(text), status) for name, text, status in cases]


@pytest.fixture(scope="module")
def server(lake: Path) -> Iterator[tuple[str, psutil.Process]]:
    """`eventpipe serve` over the lake, with a small memory limit, and its process."""
    args = ("--api-key", API_KEY, "--memory-limit", f"{MEMORY_LIMIT_MB}MB", "--max-queries", "2")
    with serve_process(lake, *args) as url:
        port = int(url.rsplit(":", 1)[1])
        pid = next(
            c.pid
            for c in psutil.net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        )
        yield url, psutil.Process(pid)


def test_long_one_of_lists_compile_to_a_few_branches() -> None:
    """Issue 10: 3,000 `is one of` values used to be 6,003 parameters and 3,000 OR branches
    (14.6 GB and 95 s on 200k events, then a 500); now one list per JSON type."""
    predicate = compile_filter(json.loads(_one_of(3, [str(1000 + i) for i in range(1000)])))
    assert len(predicate.params) <= 3 * 3
    assert predicate.sql.count(" OR ") <= 3 * 2 + 2
    assert all(len(v) == 1000 for v in predicate.params.values() if isinstance(v, list))


def test_hostile_requests_get_a_4xx_never_a_500_and_memory_stays_bounded(
    server: tuple[str, psutil.Process],
) -> None:
    url, process = server
    for _ in range(3):
        assert raw_get(url, "/v1/events?limit=10")[0] == 200
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], process.memory_info().rss)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = [
            (name, *raw_get(url, "/v1/events?" + query), want)
            for name, query, want in _hostile_requests()
        ]
    finally:
        done.set()
        watcher.join()
    for name, status, body, want in results:
        assert status == want, (name, body)
        if status != 200:
            assert body["error"]["message"], name
    events = results[0][2]["events"]  # issue 10's request: its matches, newest first
    assert len(events) == 100
    assert all(1000 <= e["properties"]["p0"] < 2000 for e in events)
    after = process.memory_info().rss
    bound = baseline + (MEMORY_LIMIT_MB + 256) * 2**20
    assert peak[0] < bound, f"peak RSS {peak[0] >> 20} MB, baseline {baseline >> 20} MB"
    assert after < bound, f"RSS after {after >> 20} MB, baseline {baseline >> 20} MB"


def test_filter_value_total_is_stated_in_the_docs(server: tuple[str, psutil.Process]) -> None:
    url, _ = server
    parameter = next(
        p
        for p in httpx.get(url + "/openapi.json").json()["paths"]["/v1/events"]["get"]["parameters"]
        if p["name"] == "filter"
    )
    assert f"{MAX_FILTER_VALUES:,} in all together" in parameter["description"]
    assert "100 conditions" in parameter["description"]


def _app_url(lake: Path, limits: ServingLimits):  # type: ignore[no-untyped-def]
    return running_server(create_app(str(lake), [API_KEY], limits=limits))


def test_statement_timeout_is_a_503_with_a_message(lake: Path) -> None:
    with (
        _app_url(lake, ServingLimits(statement_timeout=0.001)) as url,
        httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client,
    ):
        response = client.get("/v1/events", params={"filter": _heavy_filter()})
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "1"
        assert (
            "statement timeout (0.001 s, --statement-timeout)"
            in response.json()["error"]["message"]
        )
        # The interrupt does not leak into the next request.
        with _app_url(lake, ServingLimits()) as fine:
            assert httpx.get(fine + "/v1/events", headers=HEADERS).status_code == 200


def test_memory_limit_is_a_503_with_a_message(lake: Path) -> None:
    with (
        _app_url(lake, ServingLimits(memory_limit="2MB")) as url,
        httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client,
    ):
        response = client.get("/v1/events", params={"order": "userId"})
        assert response.status_code == 503, response.text
        assert "memory than the server's limit (2MB" in response.json()["error"]["message"]


@dataclass(frozen=True)
class _ShortQueue(ServingLimits):
    """Limits whose slot wait is short while a statement may run long: the 503 of a full
    server comes after a short, fixed wait, and a request that gets a slot is not stopped
    by the statement timeout, however loaded the machine is."""

    @property
    def queue_timeout(self) -> float:
        return 0.2


def test_no_free_query_slot_is_a_503(lake: Path) -> None:
    # With the default queue wait (three statement timeouts) a 0.05 s statement timeout made
    # the request after the release time out under load (a 503 "ran longer than the
    # statement timeout" where a 200 was expected).
    limits = _ShortQueue(statement_timeout=60, max_queries=1)
    app = create_app(str(lake), [API_KEY], limits=limits)
    reader = app.state.reader
    with running_server(app) as url:
        assert reader._slots.acquire(timeout=5)  # a request holding the only slot
        try:
            response = httpx.get(url + "/v1/events", headers=HEADERS, timeout=60)
        finally:
            reader._slots.release()
        assert response.status_code == 503
        assert "already running 1 queries" in response.json()["error"]["message"]
        assert response.headers["Retry-After"] == "1"
        assert httpx.get(url + "/v1/events", headers=HEADERS, timeout=60).status_code == 200


def test_deadline_interrupts_every_statement_after_it_expires() -> None:
    """DuckDB forgets an interrupt when a statement starts: the deadline repeats it."""
    cursor = duckdb.connect().cursor()
    endless = "SELECT count(*) FROM range(1_000_000_000_000) AS a"
    with Deadline(cursor, 0.05) as deadline:
        with pytest.raises(duckdb.InterruptException):
            cursor.execute(endless)
        with pytest.raises(duckdb.InterruptException):
            cursor.execute(endless)
    assert deadline.expired
    assert cursor.execute("SELECT 42").fetchall() == [(42,)]


def test_a_heavy_request_leaves_a_fresh_database(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: DuckDB keeps memory a heavy query used until its database closes, so a
    request that ran HEAVY_SECONDS replaces the database; the next request uses the new one."""
    reader = LakeReader(lake)
    first = reader._db
    reader.list_events(EventQuery(limit=5, connections=None))
    assert reader._db is first  # a light request keeps it
    monkeypatch.setattr(query_module, "HEAVY_SECONDS", 0.0)
    reader.list_events(EventQuery(limit=5, connections=None))
    assert reader._db is not first
    assert reader.list_events(EventQuery(limit=5, connections=None)).num_rows == 5


def test_a_database_is_replaced_after_database_requests(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_module, "DATABASE_REQUESTS", 3)
    reader = LakeReader(lake)
    first = reader._db
    for _ in range(2):
        reader.list_events(EventQuery(limit=5, connections=None))
    assert reader._db is first
    reader.list_events(EventQuery(limit=5, connections=None))
    second = reader._db
    assert second is not first
    for _ in range(2):
        reader.list_events(EventQuery(limit=5, connections=None))
    assert reader._db is second  # counted afresh
