"""End to end: `eventpipe import` on the DirectRunner over a generated corpus, read back."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate
from eventpipe.schemas import arrow_schema
from eventpipe.transforms.failures import FAILED_SCHEMA


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus")
    manifest = generate(out, events=6000, seed=11, units_per_file=1500)
    return out, manifest


def run_import(corpus_dir: Path, lake: Path, *extra: str) -> dict:
    code = main(["import", str(corpus_dir / "*"), "--lake", str(lake), *extra])
    assert code == 0
    [summary] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    return summary


def check_lake(lake: Path, manifest: dict, summary: dict) -> None:
    assert summary["reconciles"]
    assert summary["read"] == manifest["read_units"]
    assert summary["written"] == manifest["expected_written"]
    assert summary["duplicates"] == manifest["duplicates"]
    assert summary["failed"] == manifest["expected_failed"]
    assert summary["failed_by_reason"] == manifest["expected_failed_by_reason"]
    assert not (lake / "_staging").exists() or not any((lake / "_staging").iterdir())
    # Every file holds exactly the event schema (the partition is only in the path).
    files = sorted((lake / "events").glob("date=*/*.parquet"))
    assert files
    for path in files:
        assert pq.read_schema(path).equals(arrow_schema())
    # Read back with pyarrow and DuckDB: the counts agree with the summary.
    events = ds.dataset(lake / "events", format="parquet", partitioning="hive")
    assert events.count_rows() == summary["written"]
    failed = ds.dataset(lake / "failed", format="parquet", partitioning="hive")
    assert failed.count_rows() == summary["failed"]
    assert failed.schema.remove(failed.schema.get_field_index("date")).equals(FAILED_SCHEMA)
    con = duckdb.connect()
    glob = f"{lake}/events/*/*.parquet"
    bad_dates = con.execute(
        f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true) "
        "WHERE strftime(timestamp, '%Y-%m-%d') <> CAST(date AS VARCHAR)"
    ).fetchall()
    assert bad_dates == [(0,)]
    reasons = con.execute(
        f"SELECT reason, count(*) FROM read_parquet('{lake}/failed/*/*.parquet') GROUP BY 1"
    ).fetchall()
    assert dict(reasons) == manifest["expected_failed_by_reason"]
    unnamed = con.execute(
        f"SELECT count(*) FROM read_parquet('{lake}/failed/*/*.parquet') "
        "WHERE raw IS NULL OR message IS NULL OR source IS NULL OR line < 1"
    ).fetchall()
    assert unnamed == [(0,)]


def test_import_reconciles_with_the_corpus(corpus, tmp_path):
    corpus_dir, manifest = corpus
    lake = tmp_path / "lake"
    summary = run_import(corpus_dir, lake)
    check_lake(lake, manifest, summary)


def test_import_multi_processing(corpus, tmp_path):
    corpus_dir, manifest = corpus
    lake = tmp_path / "lake"
    summary = run_import(
        corpus_dir, lake, "--direct_running_mode=multi_processing", "--direct_num_workers=2"
    )
    check_lake(lake, manifest, summary)


def test_enrichment_fills_browser_os_and_location(corpus, tmp_path):
    corpus_dir, _ = corpus
    lake = tmp_path / "lake"
    run_import(corpus_dir, lake)
    con = duckdb.connect()
    rows = con.execute(
        f"""SELECT count(*) FILTER (WHERE context.browser.name IS NOT NULL),
                   count(*) FILTER (WHERE context.location.country IS NOT NULL),
                   count(*) FILTER (WHERE context.device.type = 'bot')
            FROM read_parquet('{lake}/events/*/*.parquet')"""
    ).fetchall()
    browsers, located, bots = rows[0]
    assert browsers > 0 and located > 0 and bots > 0


def test_drop_bots_moves_them_to_failed(corpus, tmp_path):
    corpus_dir, manifest = corpus
    lake = tmp_path / "lake"
    summary = run_import(corpus_dir, lake, "--drop-bots")
    assert summary["reconciles"]
    bots = summary["failed_by_reason"]["bot"]
    assert bots > 0
    assert summary["written"] + bots + summary["duplicates"] == manifest["expected_valid"]


def test_no_matching_input_is_a_clear_error(tmp_path, caplog):
    assert (
        main(["import", str(tmp_path / "nothing-*.jsonl"), "--lake", str(tmp_path / "lake")]) == 2
    )
    assert "no event file" in caplog.text


def test_reimport_gives_identical_rows(corpus, tmp_path):
    corpus_dir, _ = corpus
    tables = []
    for name in ("a", "b"):
        run_import(corpus_dir, tmp_path / name)
        t = ds.dataset(tmp_path / name / "events", format="parquet", partitioning="hive").to_table()
        tables.append(t.sort_by([("messageId", "ascending"), ("timestamp", "ascending")]))
    assert tables[0].equals(tables[1])


def test_no_enrich_stores_events_as_normalised(corpus, tmp_path):
    corpus_dir, manifest = corpus
    lake = tmp_path / "lake"
    summary = run_import(corpus_dir, lake, "--no-enrich")
    assert summary["written"] == manifest["expected_written"]
    con = duckdb.connect()
    [(derived,)] = con.execute(
        f"SELECT count(*) FROM read_parquet('{lake}/events/*/*.parquet') "
        "WHERE context.device.type = 'bot'"
    ).fetchall()
    assert derived == 0


def _arrow_type_of(doc_type: dict) -> pa.DataType:
    kind = doc_type["kind"]
    if kind == "object":
        return pa.struct(
            [pa.field(p["name"], _arrow_type_of(p["type"])) for p in doc_type["properties"]]
        )
    if kind == "int":
        return {16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[doc_type["bitSize"]]
    if kind == "float":
        return pa.float64()
    if kind == "decimal":
        return pa.decimal128(doc_type["precision"], doc_type["scale"])
    if kind == "boolean":
        return pa.bool_()
    if kind == "datetime":
        return pa.timestamp("us", tz="UTC")
    return pa.string()  # string, uuid, ip, json (as JSON text)


def test_lake_files_hold_what_eventpipe_schema_prints(corpus, tmp_path, capsys):
    corpus_dir, _ = corpus
    lake = tmp_path / "lake"
    run_import(corpus_dir, lake)
    capsys.readouterr()
    assert main(["schema"]) == 0
    document = json.loads(capsys.readouterr().out)
    expected = [(p["name"], _arrow_type_of(p["type"])) for p in document["schema"]["properties"]]
    for path in sorted((lake / "events").glob("date=*/*.parquet"))[:5]:
        stored = pq.read_schema(path)
        assert [(f.name, f.type) for f in stored] == expected
        required = {
            p["name"] for p in document["schema"]["properties"] if not p.get("readOptional")
        }
        assert {f.name for f in stored if not f.nullable} == required


@pytest.mark.parametrize(
    ("policy", "check"),
    [
        ("drop", "context.ip IS NOT NULL"),
        ("mask", "NOT (context.ip LIKE '%.0' OR context.ip LIKE '%::')"),
    ],
)
def test_ip_policy_applies_after_geolocation(corpus, tmp_path, policy, check):
    corpus_dir, _ = corpus
    lake = tmp_path / "lake"
    run_import(corpus_dir, lake, "--ip-policy", policy)
    con = duckdb.connect()
    [(violations, located)] = con.execute(
        f"SELECT count(*) FILTER (WHERE {check}), count(*) FILTER (WHERE context.location.country IS NOT NULL) "
        f"FROM read_parquet('{lake}/events/*/*.parquet')"
    ).fetchall()
    assert violations == 0
    assert located > 0  # locations were derived from the full address first
