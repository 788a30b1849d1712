"""`--sink bigquery --lake`: the archive is committed before any load job, and a re-run of
an import killed between the two loads what the crash left, without archiving it again
(each event once in the table and once in the archive)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from api_support import make_event

from eventpipe.io import lake as L
from eventpipe.io.bigquery.staged import LOADING, load_archived_not_loaded
from eventpipe.io.bigquery.tables import load_parquet, parquet_bytes, prepare_tables
from eventpipe.io.lake_transaction import OWNER
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate
from eventpipe.schemas import arrow_schema
from eventpipe.schemas.bigquery_schema import load_arrow_schema

from pipeline_support import kill_job_at


def table_keys(client, table_id: str) -> Counter:
    rows = client.query(f"SELECT connectionId, messageId FROM `{table_id}`")
    return Counter((r["connectionId"], r["messageId"]) for r in rows)


def archive_rows(lake) -> int:
    [(n,)] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/raw/*/*.parquet')").fetchall()
    return n


def test_an_import_killed_after_archiving_is_loaded_by_the_next_run(tmp_path, bq_client, bq_target):
    corpus, lake = tmp_path / "corpus", tmp_path / "lake"
    manifest = generate(corpus, events=1500, seed=23, units_per_file=500)
    args = ["import", str(corpus / "*"), "--lake", str(lake), "--sink", "bigquery"]
    args += ["--bq-table", bq_target.table, "--bq-failed-table", bq_target.failed_table]
    args += ["--bq-endpoint", bq_target.endpoint]
    kill_job_at("archived-before-load", args, tmp_path / "paused")
    # The archive is committed; no load job has run.
    assert archive_rows(lake) == manifest["expected_written"]
    assert table_keys(bq_client, bq_target.table) == Counter()
    # The re-run loads every archived event once.
    assert main(args) == 0
    loaded = table_keys(bq_client, bq_target.table)
    assert loaded.total() == manifest["expected_written"]
    assert set(loaded.values()) == {1}
    assert not [p for p in (lake / L.STAGING).iterdir()]
    # ... and archives nothing again: the archive holds each event once.
    assert archive_rows(lake) == manifest["expected_written"]


def _events(count: int) -> pa.Table:
    rows = [
        make_event(
            messageId=f"m{i:03d}", timestamp=dt.datetime(2025, 10, 20, 12, i % 60, tzinfo=dt.UTC)
        )
        for i in range(count)
    ]
    return pa.Table.from_pylist(rows, schema=arrow_schema())


def _loading_folder(lake: Path, run_id: str, pid: int, rows: pa.Table) -> Path:
    """What a run whose process is `pid` leaves once its archive is committed."""
    folder = lake / L.STAGING / f"{run_id}{LOADING}"
    (folder / "date=2025-10-20").mkdir(parents=True)
    pq.write_table(rows, folder / "date=2025-10-20" / "part-0.parquet")
    owner = {"host": socket.gethostname(), "pid": pid, "job": ""}
    (folder / OWNER).write_text(json.dumps(owner))
    return folder


def test_rows_of_a_run_that_died_between_two_loads_are_loaded_once(
    tmp_path, bq_client, bq_target
) -> None:
    """Half the rows were loaded before the run died: only the other half is loaded; the
    folder of a run that is still alive is left alone."""
    prepare_tables(bq_target)
    rows = _events(40)
    schema = load_arrow_schema()
    half = parquet_bytes(rows.slice(0, 20).select(schema.names).cast(schema))
    load_parquet(bq_client, bq_target.table, half, "test_first_half")
    ended = subprocess.Popen(["true"])
    ended.wait()  # reaped: its pid names no process
    dead = _loading_folder(tmp_path, "run-dead", ended.pid, rows)
    alive = _loading_folder(tmp_path, "run-alive", os.getpid(), rows)
    notes = load_archived_not_loaded(str(tmp_path), bq_target)
    assert notes == ["loaded 20 events archived but not loaded by interrupted run run-dead"]
    loaded = table_keys(bq_client, bq_target.table)
    assert loaded.total() == 40 and set(loaded.values()) == {1}
    assert not dead.exists() and alive.exists()
    assert load_archived_not_loaded(str(tmp_path), bq_target) == []  # nothing left to do
