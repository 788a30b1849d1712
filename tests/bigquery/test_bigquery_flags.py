"""BigQuery flags through the `eventpipe import` command line, against the emulator."""

from __future__ import annotations

import json

from eventpipe.jobs.cli import main


def load_jobs(client) -> set[str]:
    return {job.job_id for job in client.list_jobs() if job.job_type == "load"}


def test_rows_per_load_sets_the_rows_of_each_load_job(tmp_path, bq_client, bq_target):
    events = [
        {"type": "track", "event": "E", "anonymousId": "a", "messageId": f"m{i}",
         "timestamp": "2026-11-20T10:00:00Z"}
        for i in range(25)
    ]  # fmt: skip
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    before = load_jobs(bq_client)
    args = ["import", str(source), "--connection-id", "1", "--sink", "bigquery"]
    args += ["--bq-table", bq_target.table, "--bq-failed-table", bq_target.failed_table]
    args += ["--bq-endpoint", bq_target.endpoint, "--bq-rows-per-load", "10"]
    assert main(args) == 0
    new = [bq_client.get_job(j) for j in load_jobs(bq_client) - before]
    # 25 rows at most 10 per load job: three jobs (the default, 100,000, makes one).
    assert sum(j.destination.table_id == "events" for j in new) == 3
    [row] = bq_client.query(f"SELECT count(*) AS n FROM `{bq_target.table}`").result()
    assert row["n"] == 25
