"""Load jobs as far as the emulator can show them: the request a partition swap by
decorator sends (the emulator refuses `TABLE$YYYYMMDD`), and a job id that ran already."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import orjson
import pyarrow as pa
import pytest
from google.api_core.exceptions import BadRequest

from eventpipe.core.bigquery_client import make_client
from eventpipe.io.bigquery.tables import (
    load_arrow_schema,
    load_parquet,
    parquet_bytes,
    prepare_tables,
    replace_partition,
)
from eventpipe.schemas import arrow_schema

from pipeline_support import Stages, make_event

PROJECT = "test-project"


def events_on(day: str, prefix: str, n: int) -> pa.Table:
    records = [
        orjson.dumps(make_event(messageId=f"{prefix}-{i}", timestamp=f"{day}T10:00:0{i}Z")).decode()
        for i in range(n)
    ]
    events, failed, _ = Stages(1).run_tables(records)
    assert failed.num_rows == 0
    return events.select(arrow_schema().names)


def load_bytes(rows: pa.Table) -> bytes:
    return parquet_bytes(rows.select(load_arrow_schema().names).cast(load_arrow_schema()))


def message_ids(client, table_id: str) -> list[str]:
    return sorted(r["messageId"] for r in client.query(f"SELECT messageId FROM `{table_id}`"))


@pytest.fixture
def recording_proxy(bq_endpoint) -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """A real HTTP server on 127.0.0.1 that forwards every request to the emulator and
    records (method, path, body): what the client really sent."""
    upstream = urlsplit(bq_endpoint)
    seen: list[tuple[str, str, bytes]] = []

    class Forward(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.command, self.path, body))
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, body, headers)
            answer = conn.getresponse()
            payload = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)  # port 0: read back below
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_swap_by_decorator_sends_one_write_truncate_load_into_the_day(
    bq_client, bq_target, recording_proxy
):
    """BigQuery's default reprocess swap. Verified here: the load job it sends (destination
    `events$20261120`, WRITE_TRUNCATE, Parquet, its job id); that the emulator refuses the
    decorator and that the refusal changes nothing. Not verifiable without BigQuery: that
    the partition is then replaced whole (the emulator has no partition decorators)."""
    prepare_tables(bq_target, bq_client)
    load_parquet(bq_client, bq_target.table, load_bytes(events_on("2026-11-20", "old", 3)), "j1")
    proxy, seen = recording_proxy
    client = make_client(PROJECT, proxy)
    with pytest.raises(BadRequest, match=r"events\$20261120"):
        replace_partition(
            client, bq_target.table, dt.date(2026, 11, 20), events_on("2026-11-20", "new", 2),
            job_id_prefix="eventpipe_r1_replace",
        )  # fmt: skip
    jobs = [
        json.loads(body)
        for method, path, body in seen
        if method == "POST" and "/upload/" in path and "/jobs" in path
    ]
    assert jobs, [(m, p) for m, p, _ in seen]
    for job in jobs:  # one load job, tried again (a new id suffix) after each failure
        load = job["configuration"]["load"]
        assert load["destinationTable"] == {
            "projectId": PROJECT,
            "datasetId": bq_target.table.split(".")[1],
            "tableId": "events$20261120",
        }
        assert load["writeDisposition"] == "WRITE_TRUNCATE"
        assert load["sourceFormat"] == "PARQUET"
        assert job["jobReference"]["jobId"].startswith("eventpipe_r1_replace_20261120_")
    assert message_ids(bq_client, bq_target.table) == ["old-0", "old-1", "old-2"]


def load_job_ids(client) -> set[str]:
    return {job.job_id for job in client.list_jobs() if job.job_type == "load"}


def test_a_second_load_under_the_id_of_a_done_load_takes_its_result(bq_client, bq_target):
    """A retried bundle loads under the id of its first try and takes that job's outcome.
    The emulator names load jobs itself (`bqemu_...`, not the id asked for): the retry here
    uses the id the first load really got. Not shown: BigQuery's refusal (409) of a second
    job with an id while the first runs (load_parquet's Conflict branch)."""
    prepare_tables(bq_target, bq_client)
    data = load_bytes(events_on("2026-11-20", "m", 3))
    before = load_job_ids(bq_client)
    assert load_parquet(bq_client, bq_target.table, data, "eventpipe_run1_first") == 3
    [first] = load_job_ids(bq_client) - before
    assert load_parquet(bq_client, bq_target.table, data, first) == 3  # the retry
    assert load_job_ids(bq_client) - before == {first}  # no second load job
    assert message_ids(bq_client, bq_target.table) == ["m-0", "m-1", "m-2"]
