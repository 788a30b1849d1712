"""Shared infrastructure below every stage: the DuckDB session, metrics, the Arrow coder."""
