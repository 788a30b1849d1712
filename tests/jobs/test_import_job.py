"""End to end: `eventpipe import` on the DirectRunner over a generated corpus, read back."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import maxminddb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from _maxminddb_geolite2 import geolite2_database

from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate
from eventpipe.sample.user_agents import AGENTS, BOT, BROWSER
from eventpipe.schemas import arrow_schema
from eventpipe.schemas.failures import FAILED_SCHEMA


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


# Desktop user agents -> browser name, first match wins (seed 000's normalised names).
DESKTOP_BROWSERS = (
    ("YaBrowser/", "Other"),
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)


def _enriched_contexts(lake: Path) -> list[dict]:
    return (
        duckdb.sql(
            "SELECT context.userAgent AS ua, context.ip AS ip, context.browser.name AS browser, "
            "context.browser.version AS version, context.os.name AS os, context.device.type AS device, context.location AS location "
            f"FROM read_parquet('{lake}/events/*/*.parquet')"
        )
        .to_arrow_table()
        .to_pylist()
    )


def test_enrichment_derives_the_values_an_independent_reading_gives(corpus, tmp_path):
    corpus_dir, _ = corpus
    lake = tmp_path / "lake"
    run_import(corpus_dir, lake)
    rows = _enriched_contexts(lake)
    # Location: the country the GeoLite2 database gives for the IP, read here with maxminddb;
    # a location the app sent (with a speed: GeoIP has none) is kept whole.
    reader = maxminddb.open_database(geolite2_database())
    checked = Counter()
    for row in rows:
        if row["ip"] is None:
            continue
        location = row["location"] or {}
        if location.get("speed") is not None:
            assert location["country"] is None, row
            checked["explicit location"] += 1
            continue
        record = reader.get(row["ip"]) or {}
        assert location.get("country") == (record.get("country") or {}).get("iso_code"), row
        checked["country" if location.get("country") else "no country"] += 1
    # Browser, OS and bots from the user-agent string (derived names come with a version) and the generator's own agent table.
    kinds = {agent.ua: agent.kind for agent in AGENTS}
    for row in rows:
        ua = row["ua"] or ""
        if kinds.get(ua) == BOT:
            assert row["device"] == "bot", row
            checked["bot"] += 1
        elif kinds.get(ua) == BROWSER:
            assert row["device"] != "bot", row
        desktop = "Windows NT" in ua or "Macintosh" in ua
        if kinds.get(ua) == BROWSER and desktop and row["version"] is None:
            checked["explicit browser"] += 1  # a name the SDK sent (without a version) wins
        elif kinds.get(ua) == BROWSER and desktop:
            expected = next(name for marker, name in DESKTOP_BROWSERS if marker in ua)
            assert row["browser"] == expected, row
            assert row["os"] == ("Windows" if "Windows NT" in ua else "macOS"), row
            checked[expected] += 1
    assert min(checked[k] for k in ("explicit location", "country", "no country", "bot")) > 10
    assert {name for _, name in DESKTOP_BROWSERS} <= set(checked)


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
    summary = run_import(corpus_dir, tmp_path / "plain", "--no-enrich")
    assert summary["written"] == manifest["expected_written"]
    run_import(corpus_dir, tmp_path / "enriched")
    plain = {r["messageId"]: r for r in _events_by_id(tmp_path / "plain")}
    enriched = {r["messageId"]: r for r in _events_by_id(tmp_path / "enriched")}
    assert plain.keys() == enriched.keys()
    derived = Counter()
    for key, row in plain.items():
        other = enriched[key]
        # Only the enriched context fields differ, and only where nothing was sent.
        assert {k: v for k, v in row.items() if k != "context"} == {
            k: v for k, v in other.items() if k != "context"
        }
        for field, value in row["context"].items():
            if field in ENRICHED_FIELDS and value != other["context"][field]:
                derived[field] += 1
            else:
                assert value == other["context"][field], (key, field)
        assert (row["context"]["device"] or {}).get("type") != "bot"
        assert (row["context"]["location"] or {}).get("country") is None
    assert {"browser", "os", "location", "device"} <= set(derived)


ENRICHED_FIELDS = {"browser", "os", "device", "location", "campaign"}


def _events_by_id(lake: Path) -> list[dict]:
    return ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table().to_pylist()


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
    paths = sorted((lake / "events").glob("date=*/*.parquet"))[:5]
    assert paths
    for path in paths:
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
