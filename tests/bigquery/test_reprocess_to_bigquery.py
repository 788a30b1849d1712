"""`eventpipe reprocess --sink bigquery`: days of the range replaced whole from the lake's archive."""

from __future__ import annotations

from collections import Counter

import pyarrow.compute as pc
import pyarrow.dataset as ds

from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate


def messages_by_day(client, table_id: str) -> dict[str, Counter]:
    rows = client.query(f"SELECT DATE(timestamp) AS day, messageId FROM `{table_id}`")
    out: dict[str, Counter] = {}
    for row in rows:
        out.setdefault(row["day"].isoformat(), Counter())[row["messageId"]] += 1
    return out


def test_reprocess_replaces_the_days_of_the_range_and_leaves_the_others(
    tmp_path, bq_client, bq_target
):
    corpus, lake = tmp_path / "corpus", tmp_path / "lake"
    generate(corpus, events=1500, seed=21, units_per_file=500)
    assert main(["import", str(corpus / "*"), "--lake", str(lake)]) == 0  # writes the archive
    bq = ["--sink", "bigquery", "--bq-table", bq_target.table, "--bq-endpoint", bq_target.endpoint]
    assert main(["import", str(corpus / "*"), *bq]) == 0  # BigQuery: duplicates included
    before = messages_by_day(bq_client, bq_target.table)
    days = sorted(before)
    assert len(days) >= 3
    first, last = days[0], days[len(days) // 2]

    reprocess = ["reprocess", "--lake", str(lake), "--from", first, "--to", last]
    assert main([*reprocess, *bq, "--bq-partition-swap", "transaction"]) == 0

    after = messages_by_day(bq_client, bq_target.table)
    events = ds.dataset(lake / "events", format="parquet", partitioning="hive").to_table()
    for day in days:
        if first <= day <= last:  # replaced by the reprocessed archive: the lake's rows, once
            in_lake = events.filter(pc.equal(pc.cast(events["date"], "string"), day))
            assert after[day] == Counter(in_lake["messageId"].to_pylist()), day
        else:
            assert after[day] == before[day], day
    assert sum(before[d].total() for d in days if first <= d <= last) > sum(
        after[d].total() for d in days if first <= d <= last
    )  # the range held duplicates before
    dataset = bq_target.table.rsplit(".", 1)[0]
    summaries = list(bq_client.query(f"SELECT summary FROM `{dataset}.eventpipe_runs`"))
    assert len(summaries) == 2
