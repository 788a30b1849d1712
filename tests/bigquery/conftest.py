"""Fixtures of the BigQuery tests: a fresh dataset and target per test (the emulator
itself: bq_emulator.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from bq_emulator import PROJECT

from eventpipe.io.bigquery.tables import BigQueryTarget


@pytest.fixture
def bq_dataset(bq_client) -> Iterator[str]:
    """A fresh dataset (`PROJECT.DATASET`), deleted with its tables afterwards."""
    name = f"{PROJECT}.t_{uuid.uuid4().hex[:10]}"
    bq_client.create_dataset(name)
    yield name
    bq_client.delete_dataset(name, delete_contents=True, not_found_ok=True)


@pytest.fixture
def bq_target(bq_dataset, bq_endpoint) -> BigQueryTarget:
    """Where a test writes: an events table and a failed table in a fresh dataset."""
    return BigQueryTarget(
        table=f"{bq_dataset}.events", failed_table=f"{bq_dataset}.failed", endpoint=bq_endpoint
    )
