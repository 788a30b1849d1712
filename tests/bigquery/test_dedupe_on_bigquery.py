"""Deduplication on the BigQuery sink, end to end against the emulator (the lake's rule)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate

from pipeline_support import make_event

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bq-dedupe-corpus")
    return out, generate(out, events=2000, seed=11, units_per_file=1000)


def bq_import(target, *inputs: str) -> dict:
    """Import `inputs` into `target`; the run's summary as recorded in BigQuery."""
    args = ["import", *inputs, "--connection-id", "1", "--sink", "bigquery"]
    assert main([*args, "--bq-table", target.table, "--bq-endpoint", target.endpoint]) == 0
    return latest_summary(target)


def latest_summary(target) -> dict:
    dataset = target.table.rsplit(".", 1)[0]
    client = target.client()
    [row] = list(
        client.query(
            f"SELECT summary FROM `{dataset}.eventpipe_runs` ORDER BY finishedAt DESC LIMIT 1"
        )
    )
    summary = row["summary"]
    return summary if isinstance(summary, dict) else json.loads(summary)


def stored_keys(client, table_id: str) -> Counter:
    rows = client.query(f"SELECT connectionId, messageId FROM `{table_id}`")
    return Counter((r["connectionId"], r["messageId"]) for r in rows)


def test_importing_the_same_files_twice_adds_no_row(corpus, bq_client, bq_target):
    corpus_dir, manifest = corpus
    first = bq_import(bq_target, str(corpus_dir / "*"))
    assert first["reconciles"]
    assert first["written"] == manifest["expected_written"]
    assert first["duplicates"] == manifest["duplicates"] > 0
    stored = stored_keys(bq_client, bq_target.table)
    assert sum(stored.values()) == first["written"] and set(stored.values()) == {1}

    second = bq_import(bq_target, str(corpus_dir / "*"))
    assert second["reconciles"]
    assert second["read"] == first["read"] == manifest["read_units"]
    assert second["written"] == 0
    assert second["duplicates"] == manifest["expected_written"] + manifest["duplicates"]
    assert second["failed"] == first["failed"]  # invalid records are rejected again
    assert stored_keys(bq_client, bq_target.table) == stored


def write_jsonl(path: Path, events: list[dict]) -> str:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def copies(client, table_id: str) -> dict[str, str]:
    rows = client.query(
        f"SELECT messageId, JSON_VALUE(properties, '$.copy') AS c FROM `{table_id}`"
    )
    found = [(r["messageId"], r["c"]) for r in rows]
    assert len(found) == len({m for m, _ in found}), "a messageId is stored twice"
    return dict(found)


def test_overlapping_exports_keep_one_copy_by_the_lakes_rule(
    tmp_path, bq_client, bq_dataset, bq_endpoint
):
    from eventpipe.io.bigquery.tables import BigQueryTarget

    def event(i: int, received_minute: int, label: str) -> dict:
        received = T0 + timedelta(hours=i, minutes=received_minute)
        stamp = received.isoformat().replace("+00:00", "Z")
        return make_event(messageId=f"m-{i}", timestamp=stamp, sentAt=stamp,
                          receivedAt=stamp, properties={"copy": label})  # fmt: skip

    monday = write_jsonl(tmp_path / "monday.jsonl", [event(i, 5, "monday") for i in range(10)])
    # Tuesday's export repeats events 5..9: 5..7 received earlier than Monday's copy, 8..9 later.
    tuesday_events = [event(i, 1 if i < 8 else 9, "tuesday") for i in range(5, 15)]
    tuesday_events.append(event(14, 0, "tuesday-again"))  # and a copy within the same file
    tuesday = write_jsonl(tmp_path / "tuesday.jsonl", tuesday_events)

    # Both exports in one run: the copy received first survives.
    together = BigQueryTarget(table=f"{bq_dataset}.together", endpoint=bq_endpoint)
    summary = bq_import(together, monday, tuesday)
    assert (summary["read"], summary["written"], summary["duplicates"]) == (21, 15, 6)
    assert copies(bq_client, together.table) == {
        **{f"m-{i}": "monday" for i in (0, 1, 2, 3, 4, 8, 9)},
        **{f"m-{i}": "tuesday" for i in (5, 6, 7, 10, 11, 12, 13)},
        "m-14": "tuesday-again",
    }

    # One after the other: what the table holds wins, whatever its receivedAt.
    apart = BigQueryTarget(table=f"{bq_dataset}.apart", endpoint=bq_endpoint)
    first = bq_import(apart, monday)
    second = bq_import(apart, tuesday)
    assert (first["written"], second["written"], second["duplicates"]) == (10, 5, 6)
    assert second["reconciles"]
    stored = copies(bq_client, apart.table)
    assert {m for m, c in stored.items() if c == "monday"} == {f"m-{i}" for i in range(10)}
    assert set(stored) == {f"m-{i}" for i in range(15)}
