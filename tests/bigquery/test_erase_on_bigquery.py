"""`eventpipe erase --sink bigquery` against the emulator: a DELETE per affected day of the
event table and of the failed table; other people's rows untouched; the lake's raw archive
and landing log erased too."""

from __future__ import annotations

import pytest
from erasure_support import (
    BOTH,
    DAYS,
    PERSON,
    PERSON_ANON,
    build_lake,
    carries,
    checksum,
    erased_line,
    files_holding,
    imported_batches,
    land,
)

from eventpipe.catalog import Catalog
from eventpipe.jobs.cli import main

pytestmark = pytest.mark.slow


def flags(target) -> list[str]:
    return [
        "--sink", "bigquery", "--bq-table", target.table,
        "--bq-failed-table", target.failed_table, "--bq-endpoint", target.endpoint,
    ]  # fmt: skip


def rows(client, table: str) -> list[dict]:
    return [dict(r.items()) for r in client.query(f"SELECT * FROM `{table}`").result()]


def persons(row: dict) -> bool:
    if "raw" in row:
        return carries(row["raw"])
    return any(row.get(c) in (PERSON, PERSON_ANON) for c in ("userId", "anonymousId", "previousId"))


def test_erase_deletes_the_persons_rows_per_day(tmp_path, bq_client, bq_target, capsys):
    from collector_support import make_tenant

    lake = tmp_path / "lake"
    catalog = Catalog.in_lake(lake)
    a, b = make_tenant(catalog, "alpha"), make_tenant(catalog, "beta")
    batches = imported_batches(a.connection, b.connection)
    corpus = tmp_path / "landed.jsonl"  # envelopes, as a collector lands them
    corpus.write_bytes(b"".join(batches))
    land(lake, batches[0])  # and one segment not imported yet
    bq = flags(bq_target)
    assert main(["import", str(corpus), "--lake", str(lake), "--no-enrich", *bq]) == 0
    tables = (bq_target.table, bq_target.failed_table)
    before = {t: rows(bq_client, t) for t in tables}
    expected = {t: sum(persons(r) for r in before[t]) for t in tables}
    assert all(expected.values())
    capsys.readouterr()

    assert main(["erase", "--lake", str(lake), *BOTH, *bq]) == 0
    output = capsys.readouterr().out
    counts = erased_line(output)
    assert (counts["events"], counts["failed"]) == (expected[tables[0]], expected[tables[1]])
    assert f"{bq_target.table}: DELETE on {DAYS[0]}, {DAYS[1]}" in output
    for table in tables:
        after = rows(bq_client, table)
        assert not any(persons(r) for r in after)
        assert checksum(after) == checksum([r for r in before[table] if not persons(r)])
    assert files_holding(lake) == []  # the raw archive and the landing log too

    assert main(["erase", "--lake", str(lake), *BOTH, *bq]) == 0
    assert set(erased_line(capsys.readouterr().out).values()) == {0}


def test_a_workspace_deletes_only_its_connections_rows(tmp_path, bq_client, bq_target, capsys):
    lake = build_lake(tmp_path)  # the lake's events too: both go
    corpus = tmp_path / "landed.jsonl"
    corpus.write_bytes(b"".join(imported_batches(lake.a.connection, lake.b.connection)))
    bq = flags(bq_target)
    assert main(["import", str(corpus), "--lake", str(lake.path), "--no-enrich", *bq]) == 0
    landed = rows(bq_client, bq_target.table)
    theirs = [r for r in landed if persons(r) and r["connectionId"] == lake.b.connection]
    scope = ["--workspace", str(lake.a.workspace)]
    assert main(["erase", "--lake", str(lake.path), *BOTH, *bq, *scope]) == 0
    left = [r for r in rows(bq_client, bq_target.table) if persons(r)]
    assert checksum(left) == checksum(theirs)
