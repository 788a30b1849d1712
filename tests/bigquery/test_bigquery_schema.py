"""The BigQuery schemas derived from the event schema; table creation and schema evolution."""

from __future__ import annotations

import pytest
from google.cloud.bigquery import SchemaField

from eventpipe.io.bigquery.tables import IncompatibleTableError, ensure_table, prepare_tables
from eventpipe.schemas import EVENT_FIELDS, arrow_schema, iter_leaves
from eventpipe.schemas.bigquery_schema import (
    CLUSTERING_FIELDS,
    compare_schemas,
    event_table_schema,
    evolved_schema,
    failed_table_schema,
    normal_type,
)
from eventpipe.schemas.failures import FAILED_SCHEMA


def leaves(fields, prefix=""):
    """{dotted path: (type, mode)} of every leaf of a BigQuery schema."""
    out = {}
    for f in fields:
        if f.field_type == "RECORD":
            out.update(leaves(f.fields, prefix + f.name + "."))
        else:
            out[prefix + f.name] = (normal_type(f.field_type), f.mode)
    return out


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("kpid", ("STRING", "NULLABLE")),
        ("connectionId", ("INT64", "REQUIRED")),
        ("messageId", ("STRING", "REQUIRED")),
        ("properties", ("JSON", "NULLABLE")),
        ("traits", ("JSON", "REQUIRED")),
        ("timestamp", ("TIMESTAMP", "REQUIRED")),
        ("sentAt", ("TIMESTAMP", "REQUIRED")),
        ("context.ip", ("STRING", "NULLABLE")),
        ("context.screen.width", ("INT64", "NULLABLE")),
        ("context.screen.density", ("NUMERIC", "NULLABLE")),
        ("context.session.id", ("INT64", "NULLABLE")),
        ("context.session.start", ("BOOL", "NULLABLE")),
        ("context.location.latitude", ("FLOAT64", "NULLABLE")),
        ("context.device.adTrackingEnabled", ("BOOL", "NULLABLE")),
        ("context.browser.name", ("STRING", "NULLABLE")),
    ],
)
def test_event_columns_map_by_kind(path, expected):
    assert leaves(event_table_schema())[path] == expected


def test_the_event_table_has_every_leaf_of_the_event_schema_in_order():
    assert list(leaves(event_table_schema())) == [path for path, _ in iter_leaves()]
    assert [f.name for f in event_table_schema()] == [f.name for f in EVENT_FIELDS]
    records = {f.name: f for f in event_table_schema() if f.field_type == "RECORD"}
    assert list(records) == ["context"]


def test_density_keeps_its_precision_and_scale():
    context = next(f for f in event_table_schema() if f.name == "context")
    screen = next(c for c in context.fields if c.name == "screen")
    density = next(c for c in screen.fields if c.name == "density")
    assert (density.precision, density.scale) == (3, 2)


def test_required_columns_are_the_non_nullable_arrow_fields():
    required = {f.name for f in event_table_schema() if f.mode == "REQUIRED"}
    assert required == {f.name for f in arrow_schema() if not f.nullable}


def test_failed_table_follows_the_failed_rows_arrow_schema():
    schema = failed_table_schema()
    assert [f.name for f in schema] == FAILED_SCHEMA.names
    types = {f.name: (f.field_type, f.mode) for f in schema}
    assert types["receivedAt"] == ("TIMESTAMP", "REQUIRED")
    assert types["line"] == ("INT64", "REQUIRED")
    assert types["index"] == ("INT64", "NULLABLE")
    assert types["raw"] == ("STRING", "REQUIRED")


def test_clustering_uses_top_level_columns_only():
    names = {f.name for f in EVENT_FIELDS if f.kind != "object"}
    assert set(CLUSTERING_FIELDS) <= names and len(CLUSTERING_FIELDS) <= 4


S = SchemaField


@pytest.mark.parametrize(
    ("existing", "missing", "conflicts"),
    [
        ([S("a", "STRING", "REQUIRED"), S("b", "INTEGER")], [], []),  # legacy type names
        ([S("a", "STRING")], ["b"], []),  # an older table: b is added
        ([S("a", "STRING", "REQUIRED"), S("b", "INT64"), S("x", "BOOL")], [], []),  # extra nullable
        ([S("a", "INT64"), S("b", "INT64")], [], ["a: the table has INT64, events need STRING"]),
        ([S("a", "STRING"), S("b", "INT64", "REQUIRED")], [], ["b: REQUIRED in the table"]),
        ([S("a", "STRING"), S("b", "INT64"), S("z", "STRING", "REQUIRED")], [], ["z: REQUIRED"]),
        ([S("a", "STRING", "REPEATED"), S("b", "INT64")], [], ["a: the table has a REPEATED"]),
    ],
)
def test_compare_schemas(existing, missing, conflicts):
    wanted = [S("a", "STRING", "REQUIRED"), S("b", "INT64")]
    result = compare_schemas(existing, wanted)
    assert result.missing == missing
    assert len(result.conflicts) == len(conflicts)
    for found, expected in zip(result.conflicts, conflicts, strict=True):
        assert found.startswith(expected)


def test_nested_fields_are_compared_and_added_inside_their_record():
    wanted = [S("c", "RECORD", fields=[S("x", "STRING"), S("y", "INT64", "REQUIRED")])]
    old = [S("c", "RECORD", fields=[S("x", "STRING")])]
    assert compare_schemas(old, wanted).missing == ["c.y"]
    [merged] = evolved_schema(old, wanted)
    assert [(f.name, f.mode) for f in merged.fields] == [("x", "NULLABLE"), ("y", "NULLABLE")]
    clash = [S("c", "RECORD", fields=[S("x", "BOOL")])]
    assert compare_schemas(clash, wanted).conflicts == [
        "c.x: the table has BOOL, events need STRING"
    ]


# --- against the emulator ----------------------------------------------------------------


def test_tables_are_created_partitioned_and_clustered(bq_client, bq_target):
    done = prepare_tables(bq_target, bq_client)
    assert done[0].startswith("created") and done[1].startswith("created")
    table = bq_client.get_table(bq_target.table)
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "timestamp")
    assert table.clustering_fields == list(CLUSTERING_FIELDS)
    assert leaves(table.schema) == leaves(event_table_schema())
    failed = bq_client.get_table(bq_target.failed_table)
    assert failed.time_partitioning.field == "receivedAt"
    assert prepare_tables(bq_target, bq_client)[0].endswith("is up to date")


def test_an_older_table_gets_the_new_columns(bq_client, bq_target):
    from google.cloud import bigquery

    full = event_table_schema()
    context = next(f for f in full if f.name == "context")
    older_context = SchemaField(
        "context", "RECORD", fields=[c for c in context.fields if c.name != "campaign"]
    )
    older = [f if f.name != "context" else older_context for f in full if f.name != "kpid"]
    bq_client.create_table(bigquery.Table(bq_target.table, schema=older))
    message = ensure_table(bq_client, bq_target.table, full, "timestamp")
    assert message == f"added columns to {bq_target.table}: kpid, context.campaign"
    assert set(leaves(bq_client.get_table(bq_target.table).schema)) == set(leaves(full))


def test_an_incompatible_table_is_a_clear_error_and_is_left_alone(bq_client, bq_target):
    from google.cloud import bigquery

    clash = [
        SchemaField("timestamp", "STRING"),
        SchemaField("messageId", "INT64", "REQUIRED"),
    ]
    bq_client.create_table(bigquery.Table(bq_target.table, schema=clash))
    with pytest.raises(IncompatibleTableError) as error:
        prepare_tables(bq_target, bq_client)
    text = str(error.value)
    assert "messageId: the table has INT64, events need STRING" in text
    assert "timestamp: the table has STRING, events need TIMESTAMP" in text
    assert [f.name for f in bq_client.get_table(bq_target.table).schema] == [
        "timestamp",
        "messageId",
    ]
