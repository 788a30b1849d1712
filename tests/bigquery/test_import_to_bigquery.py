"""End to end: `eventpipe import --sink bigquery` into the emulator, checked against the lake."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from eventpipe.io.bigquery.tables import RUNS_TABLE
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate
from eventpipe.schemas import EVENT_FIELDS

JSON_COLUMNS = [f.name for f in EVENT_FIELDS if f.kind == "json"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bq-corpus")
    manifest = generate(out, events=3000, seed=5, units_per_file=1000)
    return out, manifest


def canonical(value):
    """A comparable form of a row: JSON text parsed, decimals by value, empty records null."""
    if isinstance(value, dict):
        items = {k: canonical(v) for k, v in value.items()}
        return None if all(v is None for v in items.values()) else tuple(sorted(items.items()))
    if isinstance(value, Decimal):
        return float(value)
    return value


def row_key(row: dict) -> str:
    for name in JSON_COLUMNS:
        if row[name] is not None:
            row[name] = json.dumps(json.loads(row[name]), sort_keys=True)
    return repr(canonical(row))


def bq_rows(client, table_id: str) -> list[dict]:
    job = client.query(f"SELECT * FROM `{table_id}`")
    return job.to_arrow(create_bqstorage_client=False).to_pylist()


def test_import_into_bigquery_reconciles_and_matches_the_lake(
    corpus, tmp_path, bq_client, bq_target, capsys
):
    corpus_dir, manifest = corpus
    args = ["import", str(corpus_dir / "*"), "--sink", "bigquery", "--bq-table", bq_target.table]
    args += ["--bq-failed-table", bq_target.failed_table, "--bq-endpoint", bq_target.endpoint]
    # Worker processes: every BigQuery DoFn is pickled and set up in another process.
    args += ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "[OK]" in printed and bq_target.table in printed

    dataset = bq_target.table.rsplit(".", 1)[0]
    [run] = list(bq_client.query(f"SELECT summary FROM `{dataset}.{RUNS_TABLE}`"))
    summary = run["summary"] if isinstance(run["summary"], dict) else json.loads(run["summary"])
    assert summary["reconciles"]
    assert summary["read"] == manifest["read_units"]
    # Deduplicated as the lake is: each (connectionId, messageId) once.
    assert summary["written"] == manifest["expected_valid"] - manifest["duplicates"]
    assert summary["duplicates"] == manifest["duplicates"] > 0
    assert summary["failed"] == manifest["expected_failed"]
    assert summary["failed_by_reason"] == manifest["expected_failed_by_reason"]

    events = bq_rows(bq_client, bq_target.table)
    failed = bq_rows(bq_client, bq_target.failed_table)
    assert len(events) == summary["written"] and len(failed) == summary["failed"]
    assert dict(Counter(r["reason"] for r in failed)) == manifest["expected_failed_by_reason"]
    assert all(r["raw"] and r["message"] and r["source"] for r in failed)

    # The same corpus into a lake: the same rows, value for value (same survivors).
    lake = tmp_path / "lake"
    assert main(["import", str(corpus_dir / "*"), "--lake", str(lake)]) == 0
    lake_rows = ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table()
    lake_rows = lake_rows.drop_columns(["date"]).to_pylist()
    assert Counter(row_key(r) for r in events) == Counter(row_key(r) for r in lake_rows)


def test_import_refuses_an_incompatible_table_before_writing(corpus, bq_client, bq_target, caplog):
    from google.cloud import bigquery

    corpus_dir, _ = corpus
    bq_client.create_table(
        bigquery.Table(bq_target.table, schema=[bigquery.SchemaField("timestamp", "STRING")])
    )
    args = ["import", str(corpus_dir / "*"), "--sink", "bigquery", "--bq-table", bq_target.table]
    assert main([*args, "--bq-endpoint", bq_target.endpoint]) == 2
    assert "timestamp: the table has STRING, events need TIMESTAMP" in caplog.text
    assert bq_client.get_table(bq_target.table).num_rows == 0


def test_sink_flags_are_checked(corpus, caplog):
    corpus_dir, _ = corpus
    assert main(["import", str(corpus_dir / "*"), "--sink", "bigquery"]) == 2
    assert "--sink bigquery needs --bq-table" in caplog.text
    assert main(["import", str(corpus_dir / "*")]) == 2
    assert "--lake DIR is required" in caplog.text
