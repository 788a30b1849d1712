"""The check every benchmark makes before it reports: that it measured something."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq


def require(measured: bool, what: str) -> None:
    """Exit non-zero with `measured nothing: <what>` unless `measured`."""
    if not measured:
        sys.exit(f"measured nothing: {what}")


def partitioned_rows(folder: Path) -> int:
    """Rows of the Parquet files of a hive-partitioned folder, e.g. LAKE/events (0: none)."""
    return sum(pq.read_metadata(p).num_rows for p in folder.glob("*/*.parquet"))
