"""Files appear atomically; a killed import leaves nothing visible and is cleaned up (the
transaction itself: test_lake_transaction.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from eventpipe.core.ids import time_ordered_id
from eventpipe.io import lake as L
from eventpipe.io import lake_transaction as T
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate

from pipeline_support import kill_job_at


def _import_killed_at(moment: str, corpus: Path, lake: Path, tmp_path: Path) -> None:
    kill_job_at(moment, ["import", str(corpus / "*"), "--lake", str(lake)], tmp_path / "paused")


def _rows(lake: Path, table: str) -> int:
    return sum(pq.read_metadata(p).num_rows for p in lake.glob(f"{table}/*/*.parquet"))


def test_killed_import_leaves_no_visible_file_and_next_run_cleans_up(tmp_path):
    corpus = tmp_path / "corpus"
    manifest = generate(corpus, events=20000, seed=5)
    lake = tmp_path / "lake"
    # Killed between staging and commit: everything is staged, nothing is visible.
    _import_killed_at("before-commit", corpus, lake, tmp_path)
    assert list((lake / L.STAGING).glob("*/events/*/*.parquet"))
    assert not list((lake / L.STAGING).glob("*/" + T.COMMIT))
    assert not list(lake.glob("events/*/*.parquet"))
    assert not list(lake.glob("failed/*/*.parquet"))
    assert not list(lake.glob("_runs/*.json"))
    # The next run removes the leftovers and imports everything once.
    assert main(["import", str(corpus / "*"), "--lake", str(lake)]) == 0
    assert [p.name for p in (lake / L.STAGING).iterdir()] == []
    [summary] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    assert summary["written"] == manifest["expected_written"]
    assert _rows(lake, "events") == manifest["expected_written"]


def test_import_killed_mid_commit_is_completed_by_the_next_run(tmp_path):
    corpus = tmp_path / "corpus"
    manifest = generate(corpus, events=20000, seed=6)
    lake = tmp_path / "lake"
    # Killed after the first rename of its commit, before the others and the delete.
    _import_killed_at("commit-renamed-first", corpus, lake, tmp_path)
    [journal] = (lake / L.STAGING).glob("*/" + T.COMMIT)
    dead = journal.parent.name
    assert list((lake / L.STAGING / dead).rglob("*.parquet"))  # files still staged
    assert _rows(lake, "events") < manifest["expected_written"]
    # The next run completes the dead run's commit, then adds nothing twice.
    assert main(["import", str(corpus / "*"), "--lake", str(lake)]) == 0
    assert [p.name for p in (lake / L.STAGING).iterdir()] == []
    recovered = json.loads((lake / "_runs" / f"{dead}.json").read_text())
    assert recovered["status"] == "recovered"
    assert recovered["written"] == manifest["expected_written"]
    assert _rows(lake, "events") == manifest["expected_written"]


def test_ids_of_runs_started_within_one_second_sort_in_start_order():
    first = datetime(2026, 12, 4, 4, 49, 6, 999, tzinfo=UTC)
    later = [first + timedelta(microseconds=n) for n in (1, 500, 998_000)]
    for _ in range(50):  # the random suffix never decides the order
        ids = [time_ordered_id(t) for t in [first, *later]]
        assert sorted(ids) == ids
        assert len(set(ids)) == len(ids)


def test_a_run_summary_is_written_to_the_ledger(tmp_path):
    path = L.write_run_summary(str(tmp_path), "run1", {"written": 3, "when": datetime(2026, 1, 1)})
    assert path == str(tmp_path / L.RUNS / "run1.json")
    assert json.loads(Path(path).read_text()) == {"written": 3, "when": "2026-01-01 00:00:00"}


def test_a_run_id_is_its_start_time_then_a_random_suffix():
    run_id = time_ordered_id(datetime(2026, 12, 4, 4, 49, 6, 999, tzinfo=UTC))
    assert re.fullmatch(r"20261204T044906000999Z-[0-9a-f]{6}", run_id), run_id


def test_lake_files_are_zstd_with_dictionaries_only_where_values_repeat(tmp_path):
    """Failed and raw rows: the record texts are not dictionary-encoded, the rest is."""
    failed = pa.table({"reason": ["invalid_value"] * 3, "raw": ["a", "b", "c"]})
    path = str(tmp_path / "failed" / "date=2026-01-01" / "0.parquet")
    L.write_parquet(failed, path, event_table=False)
    chunks = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {chunks.column(i).path_in_schema: chunks.column(i).encodings for i in range(2)}
    assert "RLE_DICTIONARY" in encodings["reason"]
    assert "RLE_DICTIONARY" not in encodings["raw"]
    assert {chunks.column(i).compression for i in range(2)} == {"ZSTD"}
    assert L.read_parquet(path, ["raw"]).to_pylist() == [{"raw": r} for r in "abc"]
    assert L.read_parquet(path).equals(failed)
