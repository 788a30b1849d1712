"""The enrichment flags through the `eventpipe import` command line, into a real lake."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds

from eventpipe.jobs.cli import main

# A database that puts a London address in Changchun: only a lookup in it answers that.
WRONG_CITY = {"81.2.69.0/24": ("Changchun", "CN", 43.88, 125.3228)}


def import_one(tmp_path: Path, name: str, *flags: str) -> dict:
    event = {
        "type": "track", "event": "E", "anonymousId": "a", "messageId": "m1",
        "timestamp": "2026-11-20T10:00:00Z", "context": {"ip": "81.2.69.142"},
    }  # fmt: skip
    source = tmp_path / f"{name}.jsonl"
    source.write_text(json.dumps(event) + "\n")
    lake = tmp_path / name
    assert main(["import", str(source), "--lake", str(lake), "--connection-id", "1", *flags]) == 0
    [row] = (
        ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table().to_pylist()
    )
    return row["context"]


def test_geoip_db_flag_selects_the_database(tmp_path, make_city_db):
    db = make_city_db(WRONG_CITY)
    context = import_one(tmp_path, "tiny", "--geoip-db", str(db))
    assert context["location"]["city"] == "Changchun"
    assert context["location"]["country"] == "CN"
    bundled = import_one(tmp_path, "bundled")  # the GeoLite2 database of the package
    assert bundled["location"]["city"] != "Changchun"
    assert bundled["location"]["country"] == "GB"


def test_ip_policy_flag_masks_the_stored_address(tmp_path, make_city_db):
    db = make_city_db(WRONG_CITY)
    context = import_one(tmp_path, "masked", "--geoip-db", str(db), "--ip-policy", "mask")
    assert context["ip"] == "81.2.69.0"
    assert context["location"]["city"] == "Changchun"  # located before masking
