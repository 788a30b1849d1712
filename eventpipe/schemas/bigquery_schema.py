"""The BigQuery schemas of the event table and the failed table, derived from the event schema.

Each field of `event_schema.EVENT_FIELDS` maps by its kind: objects -> RECORD (with
their children), json -> JSON, datetime -> TIMESTAMP, int -> INT64, float ->
FLOAT64, decimal -> NUMERIC(precision, scale), boolean -> BOOL; string, uuid and ip
-> STRING. A field the event row always has is REQUIRED, every other one NULLABLE.

The table layout is chosen for the read API: day partitions on `timestamp` (its UTC
date, the lake's `date=` partition), and clustering on the columns the API's common
filters name (see `CLUSTERING_FIELDS`).

`compare_schemas` tells whether an existing table can take our rows: columns we
have and the table lacks are added (schema evolution; BigQuery only adds NULLABLE
columns), anything else that differs is a conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from eventpipe.schemas.event_schema import EVENT_FIELDS, Field, arrow_type
from eventpipe.schemas.failures import FAILED_SCHEMA

if TYPE_CHECKING:  # the client library is imported lazily (only the BigQuery paths need it)
    from google.cloud.bigquery import SchemaField

PARTITION_FIELD = "timestamp"
FAILED_PARTITION_FIELD = "receivedAt"
CLUSTERING_FIELDS: tuple[str, ...] = ("userId", "anonymousId", "event", "type")
"""Clustering of the event table (at most 4 top-level columns; nested fields such as
`context.session.id` cannot cluster). The read API's most selective common filters come
first: a user's events (`userId`, else `anonymousId` before identification), then event
names (`event is one of ...` within a date window), then the event type. Within a day
partition BigQuery then prunes storage blocks for these filters."""

_KIND_TYPES = {
    "object": "RECORD",
    "json": "JSON",
    "datetime": "TIMESTAMP",
    "int": "INT64",
    "float": "FLOAT64",
    "decimal": "NUMERIC",
    "boolean": "BOOL",
    "string": "STRING",
    "uuid": "STRING",
    "ip": "STRING",
}
# The API answers with legacy names ("INTEGER", "RECORD"...): compare on one spelling.
_SYNONYMS = {
    "INTEGER": "INT64",
    "FLOAT": "FLOAT64",
    "BOOLEAN": "BOOL",
    "STRUCT": "RECORD",
    "DECIMAL": "NUMERIC",
    "BIGDECIMAL": "BIGNUMERIC",
}
_ARROW_TYPES = (
    (pa.types.is_timestamp, "TIMESTAMP"),
    (pa.types.is_integer, "INT64"),
    (pa.types.is_floating, "FLOAT64"),
    (pa.types.is_boolean, "BOOL"),
    (pa.types.is_decimal, "NUMERIC"),
    (pa.types.is_string, "STRING"),
)


def bigquery_type(f: Field) -> str:
    """The standard SQL type name of the event field `f`."""
    return _KIND_TYPES[f.kind]


def bigquery_field(f: Field) -> SchemaField:
    """The BigQuery column of the event field `f` (RECORDs carry their children)."""
    from google.cloud.bigquery import SchemaField

    mode = "NULLABLE" if f.read_optional else "REQUIRED"
    if f.kind == "object":
        children = [bigquery_field(c) for c in f.children]
        return SchemaField(f.name, "RECORD", mode=mode, description=f.description, fields=children)
    if f.kind == "decimal":
        return SchemaField(
            f.name,
            "NUMERIC",
            mode=mode,
            description=f.description,
            precision=f.precision,
            scale=f.scale,
        )
    return SchemaField(f.name, bigquery_type(f), mode=mode, description=f.description)


def event_table_schema() -> list[SchemaField]:
    """The BigQuery schema of the event table."""
    return [bigquery_field(f) for f in EVENT_FIELDS]


def failed_table_schema() -> list[SchemaField]:
    """The BigQuery schema of the failed table, from the failed rows' Arrow schema."""
    from google.cloud.bigquery import SchemaField

    def column(af: pa.Field) -> SchemaField:
        kind = next(name for test, name in _ARROW_TYPES if test(af.type))
        return SchemaField(af.name, kind, mode="NULLABLE" if af.nullable else "REQUIRED")

    return [column(af) for af in FAILED_SCHEMA]


def normal_type(type_name: str) -> str:
    """One spelling of a BigQuery type name (`INTEGER` -> `INT64`)."""
    upper = type_name.upper()
    return _SYNONYMS.get(upper, upper)


@dataclass
class SchemaComparison:
    """How an existing table's schema relates to the one we write."""

    missing: list[str] = field(default_factory=list)  # our columns the table lacks (addable)
    conflicts: list[str] = field(default_factory=list)  # differences rows cannot be written past

    @property
    def compatible(self) -> bool:
        return not self.conflicts


def compare_schemas(
    existing: Sequence[SchemaField], wanted: Sequence[SchemaField], prefix: str = ""
) -> SchemaComparison:
    """Compare an existing table's columns with the columns we write.

    Compatible differences: a column (or RECORD sub-field) we write that the table
    lacks (it is added, NULLABLE), a table column we do not write that is NULLABLE
    (left null), and a REQUIRED column of ours that the table has as NULLABLE.
    Conflicts: another type, a RECORD against a plain column, a REPEATED column, and
    a REQUIRED table column that we do not write or may leave null.
    """
    result = SchemaComparison()
    have = {f.name: f for f in existing}
    names = {f.name for f in wanted}
    for ours in wanted:
        path = prefix + ours.name
        theirs = have.get(ours.name)
        if theirs is None:
            result.missing.append(path)
            continue
        our_type, their_type = normal_type(ours.field_type), normal_type(theirs.field_type)
        if our_type != their_type:
            result.conflicts.append(f"{path}: the table has {their_type}, events need {our_type}")
            continue
        if theirs.mode == "REPEATED":
            result.conflicts.append(f"{path}: the table has a REPEATED column")
            continue
        if theirs.mode == "REQUIRED" and ours.mode != "REQUIRED":
            result.conflicts.append(f"{path}: REQUIRED in the table, but events may leave it null")
        if our_type == "RECORD":
            inner = compare_schemas(theirs.fields, ours.fields, path + ".")
            result.missing += inner.missing
            result.conflicts += inner.conflicts
    for theirs in existing:
        if theirs.name not in names and theirs.mode == "REQUIRED":
            result.conflicts.append(
                f"{prefix}{theirs.name}: REQUIRED in the table, but events do not have it"
            )
    return result


def evolved_schema(
    existing: Sequence[SchemaField], wanted: Sequence[SchemaField]
) -> list[SchemaField]:
    """The existing columns with our missing columns (and RECORD sub-fields) appended.

    Added columns are NULLABLE, whatever their mode in `wanted`: the table's existing
    rows have no value for them.
    """
    from google.cloud.bigquery import SchemaField

    by_name = {f.name: f for f in wanted}
    merged: list[SchemaField] = []
    for theirs in existing:
        ours = by_name.get(theirs.name)
        if ours is not None and normal_type(theirs.field_type) == "RECORD":
            fields = evolved_schema(theirs.fields, ours.fields)
            api = theirs.to_api_repr()
            api["fields"] = [f.to_api_repr() for f in fields]
            merged.append(SchemaField.from_api_repr(api))
        else:
            merged.append(theirs)
    have = {f.name for f in existing}
    for ours in wanted:
        if ours.name not in have:
            merged.append(_nullable(ours))
    return merged


def _nullable(f: SchemaField) -> SchemaField:
    from google.cloud.bigquery import SchemaField

    api = f.to_api_repr()
    api["mode"] = "NULLABLE"
    if "fields" in api:
        api["fields"] = [_nullable(c).to_api_repr() for c in f.fields]
    return SchemaField.from_api_repr(api)


def _load_type(f: Field) -> pa.DataType:
    if f.kind == "object":
        return pa.struct([_load_field(c) for c in f.children])
    if f.kind == "json":
        return pa.json_(pa.string())
    return arrow_type(f)


def _load_field(f: Field) -> pa.Field:
    return pa.field(f.name, _load_type(f), nullable=f.read_optional)


def load_arrow_schema() -> pa.Schema:
    """The Arrow schema of the Parquet files given to load jobs: the lake's, with json
    columns as Arrow's JSON extension type (Parquet's JSON logical type, which BigQuery
    loads into JSON columns)."""
    return pa.schema([_load_field(f) for f in EVENT_FIELDS])
