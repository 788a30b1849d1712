"""The embedded DuckDB session the vectorised stages run their SQL in."""

from __future__ import annotations

import duckdb


def connect(threads: int = 1) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection set to UTC.

    One thread by default: Beam already runs one stage instance per core, and
    per-CPU-second efficiency is what counts.
    """
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    return con


def quote_ident(name: str) -> str:
    """A DuckDB identifier literal for `name` (e.g. a dotted leaf path)."""
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    """A DuckDB string literal for `value`."""
    return "'" + value.replace("'", "''") + "'"
