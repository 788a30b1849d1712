"""`--sink bigquery` with `--lake`: kpids stitched from the lake's identity map, the raw
archive kept in the lake, and `eventpipe reprocess --sink bigquery` replacing days from it."""

from __future__ import annotations

import shutil
from collections import Counter

import duckdb

from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate


def messages_by_day(client, table_id: str) -> dict[str, Counter]:
    rows = client.query(f"SELECT DATE(timestamp) AS day, messageId FROM `{table_id}`")
    out: dict[str, Counter] = {}
    for row in rows:
        out.setdefault(row["day"].isoformat(), Counter())[row["messageId"]] += 1
    return out


def kpids(client, table_id: str) -> dict[tuple[int, str], str | None]:
    rows = client.query(f"SELECT connectionId, messageId, kpid FROM `{table_id}`")
    return {(r["connectionId"], r["messageId"]): r["kpid"] for r in rows}


def lake_table(lake, table: str, columns: str, tail: str = "") -> list[tuple]:
    path = f"{lake}/{table}/*/*.parquet"
    sql = f"SELECT {columns} FROM read_parquet('{path}', hive_partitioning=true) {tail}"
    return duckdb.connect().execute(sql).fetchall()


def test_bigquery_with_a_lake_stitches_archives_and_reprocesses(tmp_path, bq_client, bq_target):
    corpus, lake, reference = tmp_path / "corpus", tmp_path / "lake", tmp_path / "reference"
    generate(corpus, events=1500, seed=21, units_per_file=500)
    # The reference: the same corpus in a lake, its identity graph built and stitched.
    assert main(["import", str(corpus / "*"), "--lake", str(reference)]) == 0
    assert main(["identity", "--lake", str(reference)]) == 0
    shutil.copytree(reference / "identity", lake / "identity")

    bq = ["--sink", "bigquery", "--bq-table", bq_target.table, "--bq-endpoint", bq_target.endpoint]
    assert main(["import", str(corpus / "*"), "--lake", str(lake), *bq]) == 0
    # Kpids as the lake's stitched rows have them; the archive holds exactly the loaded events.
    stitched = kpids(bq_client, bq_target.table)
    expected = lake_table(reference, "events", "connectionId, messageId, kpid")
    assert stitched == {(c, m): k for c, m, k in expected}
    assert 0 < sum(k is not None for k in stitched.values()) < len(stitched)
    archived = lake_table(lake, "raw", "date::VARCHAR, count(*)", "GROUP BY 1")
    before = messages_by_day(bq_client, bq_target.table)
    assert dict(archived) == {day: c.total() for day, c in before.items()}
    assert not (lake / "events").exists() and not list((lake / "_staging").glob("*"))

    days = sorted(before)
    assert len(days) >= 3
    first, last = days[0], days[len(days) // 2]
    reprocess = ["reprocess", "--lake", str(lake), "--from", first, "--to", last]
    for _ in range(2):  # idempotent: the same rows each time
        assert main([*reprocess, *bq, "--bq-partition-swap", "transaction"]) == 0
        assert messages_by_day(bq_client, bq_target.table) == before
        assert kpids(bq_client, bq_target.table) == stitched

    dataset = bq_target.table.rsplit(".", 1)[0]
    summaries = list(bq_client.query(f"SELECT summary FROM `{dataset}.eventpipe_runs`"))
    assert len(summaries) == 3
