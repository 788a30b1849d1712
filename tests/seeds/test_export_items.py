"""Seed 002's item shaping: the Arrow writer (`export.arrow_items`) and the pruning of
all-null context children (`export.present`) write exactly DuckDB's text (`shaped_items`,
the reference), and pages they cannot write go to DuckDB."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pyarrow as pa
import pytest

from eventpipe.api.seeds.export import COLUMNS, arrow_items, export_items, shaped_items
from eventpipe.schemas import arrow_schema

SCHEMA = pa.schema([arrow_schema().field(c) for c in COLUMNS])
UTC = dt.UTC


def row(n: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "connectionId": 1,
        "messageId": f"m-{n}",
        "timestamp": dt.datetime(2025, 9, 1, 12, 0, n, 123456, tzinfo=UTC),
        "userId": f"user-{n}",
        "type": "track",
        "event": "Signed Up",
        "context": {
            "app": {"name": None},
            "locale": "fr-FR",
            "library": {"name": "lib", "version": "1.0"},
            "screen": {"width": 1440, "height": -3},
            "network": {"wifi": n % 2 == 0},
            "session": {"id": 1000 + n, "start": n == 0},
        },
        "properties": '{"plan":"free","n":1}',
    }
    base.update(changes)
    return base


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


UNUSUAL = [
    row(0),
    row(1, userId=None, messageId='quote " back \\ slash / é 😀 \u2028'),
    row(2, context=None),
    row(3, context={"session": None, "locale": None, "page": {"title": 'a "b"'}}),
    row(4, timestamp=dt.datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)),
    row(5, type="page", event=None, properties="[1, 2]"),
    row(6, properties=None),
    row(7, properties='{"@type": "kept?", "x": null}'),
    row(8, context={"session": {"id": None, "start": None}, "app": {"name": "só"}}),
]


def test_the_arrow_writer_writes_duckdbs_text():
    rows = table(UNUSUAL)
    expected = shaped_items(rows)
    orjson.loads(expected)  # the reference is JSON
    assert arrow_items(rows) == expected
    assert export_items(rows) == expected


@pytest.mark.parametrize(
    "unusual",
    [
        row(1, context={"location": {"latitude": 48.85}, "session": {"id": 1, "start": True}}),
        row(1, context={"screen": {"density": 2}, "session": {"id": 1, "start": True}}),
        row(1, userId="tab\there"),
        row(1, context={"page": {"title": "line\nbreak"}, "session": None}),
    ],
)
def test_values_only_duckdb_writes_go_to_duckdb(unusual):
    rows = table([row(0), unusual])
    assert arrow_items(rows) is None
    assert export_items(rows) == shaped_items(rows)


def test_chunked_and_sliced_pages_write_the_same_text():
    whole = table([row(n) for n in range(6)] + UNUSUAL)
    chunked = pa.concat_tables([whole.slice(0, 5), whole.slice(5)])
    for page in (chunked, whole.slice(3, 7), chunked.slice(2, 9)):
        copied = page.take(pa.array(range(page.num_rows), pa.int64()))  # DuckDB's reference
        assert export_items(page) == shaped_items(copied)


def test_an_empty_page_is_an_empty_array():
    assert export_items(table([])) == b"[]"
