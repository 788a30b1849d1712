"""The BigQuery sink against the emulator: row checks, load jobs, partition swaps, inserts."""

from __future__ import annotations

import dataclasses
import datetime as dt

import apache_beam as beam
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from apache_beam.testing.util import assert_that, equal_to

from eventpipe.core.duck import connect
from eventpipe.io.bigquery.rows import check_rows, json_rows
from eventpipe.io.bigquery.tables import (
    load_job_id,
    parquet_bytes,
    prepare_tables,
    replace_partition,
)
from eventpipe.io.bigquery.writers import InsertToBigQuery, WriteToBigQuery
from eventpipe.schemas import arrow_schema
from eventpipe.schemas.failures import FAILED_SCHEMA

from pipeline_support import RUN_START, Stages, make_event


def events_table(
    n: int, day: str = "2026-11-20", prefix: str = "m", archived: bool = False
) -> pa.Table:
    """`n` valid event rows (through the real parse/validate/normalise stages) on `day`;
    with `archived`, as the stages hand them to a sink (with the archive column)."""
    records = [
        orjson.dumps(
            make_event(
                messageId=f"{prefix}-{i}",
                timestamp=f"{day}T10:00:{i % 60:02d}.000Z",
                context={"screen": {"width": 390, "height": 844, "density": 2.5}},
                properties={"n": i, "plan": "pro" if i % 2 else "free"},
            )
        ).decode()
        for i in range(n)
    ]
    events, failed, _ = Stages(1).run_tables(records)
    assert failed.num_rows == 0
    return events if archived else events.select(arrow_schema().names)


def with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def count(client, table_id: str, where: str = "TRUE") -> int:
    [row] = client.query(f"SELECT count(*) AS n FROM `{table_id}` WHERE {where}").result()
    return row["n"]


# --- row checks (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "bad_value", "field", "words"),
    [
        ("messageId", pa.nulls(1, pa.string()), "messageId", "REQUIRED"),
        ("traits", pa.nulls(1, pa.string()), "traits", "REQUIRED"),
        ("properties", pa.array(["{not json"]), "properties", "not JSON"),
        ("properties", pa.array(['{"a": NaN}']), "properties", "not JSON"),
        (
            "timestamp",
            pa.array([-62135596800000000 - 1], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "timestamp",
            "TIMESTAMP range",
        ),
    ],
)
def test_a_row_bigquery_would_refuse_becomes_a_failed_row(column, bad_value, field, words):
    events = events_table(3)
    values = events[column].combine_chunks()
    broken = pa.concat_arrays([values.slice(0, 1), bad_value.cast(values.type), values.slice(2)])
    good, failed = check_rows(with_column(events, column, broken), connect(), "run-1", RUN_START)
    assert good.schema.equals(arrow_schema())
    assert good["messageId"].to_pylist() == ["m-0", "m-2"]
    assert failed.schema.equals(FAILED_SCHEMA)
    [row] = failed.to_pylist()
    assert (row["reason"], row["field"], row["source"]) == ("invalid_value", field, "(bigquery)")
    assert words in row["message"] and repr(field) in row["message"]
    assert orjson.loads(row["raw"])["anonymousId"] == "anon-1"


def test_valid_rows_pass_unchanged():
    events = events_table(5)
    good, failed = check_rows(events, connect(), "run-1", RUN_START)
    assert failed.num_rows == 0 and good.equals(events.cast(arrow_schema()))


def test_insert_api_rows_are_json_safe():
    [row] = json_rows(events_table(1))
    assert row["timestamp"] == "2026-11-20T10:00:00+00:00"
    assert row["context"]["screen"] == {"width": 390, "height": 844, "density": "2.50"}
    assert orjson.loads(row["properties"]) == {"n": 0, "plan": "free"}


# --- load jobs ---------------------------------------------------------------------------------


def run_write(
    target, staging, events: list[pa.Table], failed: list[pa.Table], check_loads=None
) -> None:
    """Write through WriteToBigQuery; `check_loads` checks the list of rows per load job."""
    with beam.Pipeline() as p:
        ev = p | "Events" >> beam.Create(events)
        fa = p | "Failed" >> beam.Create(failed or [FAILED_SCHEMA.empty_table()])
        loads = (ev, fa) | WriteToBigQuery(target, "run-1", RUN_START, str(staging))
        if check_loads is not None:
            assert_that(loads, check_loads)


def test_load_jobs_write_good_rows_and_route_bad_ones_to_the_failed_table(
    bq_client, bq_target, tmp_path
):
    prepare_tables(bq_target, bq_client)
    events = events_table(40, archived=True)
    bad_json = pc.if_else(
        pc.equal(events["messageId"], "m-27"), pa.scalar("{broken"), events["properties"]
    )

    def several_loads(rows_per_job: list[int]) -> None:
        assert sum(rows_per_job) == 40 and len(rows_per_job) >= 3  # 39 events + 1 failed row
        assert max(rows_per_job) <= 10  # a job of 10 rows once 10 rows are buffered

    small_loads = dataclasses.replace(bq_target, rows_per_load=10)
    parts = [events.slice(0, 20), with_column(events, "properties", bad_json).slice(20)]
    run_write(small_loads, tmp_path, parts, [], several_loads)
    assert not list(tmp_path.rglob("*.parquet"))  # staged files removed after the loads
    assert count(bq_client, bq_target.table) == 39
    rows = list(bq_client.query(f"SELECT reason, field, raw FROM `{bq_target.failed_table}`"))
    assert [(r["reason"], r["field"]) for r in rows] == [("invalid_value", "properties")]
    assert orjson.loads(rows[0]["raw"])["messageId"] == "m-27"
    # Nested records, JSON and NUMERIC arrive typed.
    [row] = bq_client.query(
        f"SELECT context.screen.density AS d, JSON_VALUE(properties, '$.plan') AS plan "
        f"FROM `{bq_target.table}` WHERE messageId = 'm-3'"
    )
    assert (float(row["d"]), row["plan"]) == (2.5, "pro")


def test_load_job_ids_follow_the_run_table_and_content():
    """A retried bundle re-creates the same file, hence the same job id: BigQuery refuses a
    second job of that id and load_parquet takes the first one's result. (The emulator gives
    uploaded load jobs ids of its own, so only the id rule is checked here.)"""
    data = parquet_bytes(events_table(10))
    assert parquet_bytes(events_table(10)) == data  # deterministic files
    job_id = load_job_id("run-1", "p.d.events", data)
    assert job_id == load_job_id("run-1", "p.d.events", data)
    assert job_id.startswith("eventpipe_run-1_")
    others = {
        load_job_id("run-2", "p.d.events", data),
        load_job_id("run-1", "p.d.failed", data),
        load_job_id("run-1", "p.d.events", parquet_bytes(events_table(9))),
    }
    assert job_id not in others and len(others) == 3


# --- reprocessing: a partition replaced atomically -------------------------------------------


def test_replace_partition_swaps_one_day_and_leaves_the_others(bq_client, bq_target, tmp_path):
    prepare_tables(bq_target, bq_client)
    days = [events_table(5, "2026-11-20", "a", True), events_table(4, "2026-11-21", "b", True)]
    run_write(bq_target, tmp_path, days, [])
    new_rows = events_table(2, "2026-11-20", "c")
    written = replace_partition(
        bq_client, bq_target.table, dt.date(2026, 11, 20), new_rows, method="transaction"
    )
    assert written == 2
    ids = [r["messageId"] for r in bq_client.query(
        f"SELECT messageId FROM `{bq_target.table}` ORDER BY messageId"
    )]  # fmt: skip
    assert ids == ["b-0", "b-1", "b-2", "b-3", "c-0", "c-1"]
    tables = [t.table_id for t in bq_client.list_tables(bq_target.table.rsplit(".", 1)[0])]
    assert not [t for t in tables if t.startswith("_staging")]


def test_replace_partition_refuses_rows_of_another_day(bq_client, bq_target):
    prepare_tables(bq_target, bq_client)
    with pytest.raises(ValueError, match="2026-11-21"):
        replace_partition(
            bq_client, bq_target.table, dt.date(2026, 11, 20), events_table(2, "2026-11-21")
        )


# --- streaming: the insert API -----------------------------------------------------------------


def test_inserts_send_good_rows_and_return_bad_ones(bq_client, bq_target):
    prepare_tables(bq_target, bq_client)
    events = events_table(12)
    null_ids = pc.if_else(
        pc.equal(events["messageId"], "m-4"), pa.scalar(None, pa.string()), events["messageId"]
    )
    with beam.Pipeline() as p:
        failed = (
            p
            | beam.Create([with_column(events, "messageId", null_ids)])
            | InsertToBigQuery(bq_target, "run-1", RUN_START, batch_rows=5)
        )
        reasons = failed | beam.FlatMap(
            lambda t: zip(t["reason"].to_pylist(), t["field"].to_pylist(), strict=True)
        )
        assert_that(reasons, equal_to([("invalid_value", "messageId")]))
    assert count(bq_client, bq_target.table) == 11
