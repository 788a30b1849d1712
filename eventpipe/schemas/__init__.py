"""The event schema and everything derived from it."""

from eventpipe.schemas.event_schema import (
    BROWSER_NAMES,
    EVENT_FIELDS,
    EVENT_TYPES,
    OS_NAMES,
    PARTITION_COLUMN,
    TOP_LEVEL_COLUMNS,
    Field,
    arrow_schema,
    iter_leaves,
    schema_document,
)

__all__ = [
    "BROWSER_NAMES",
    "EVENT_FIELDS",
    "EVENT_TYPES",
    "OS_NAMES",
    "PARTITION_COLUMN",
    "TOP_LEVEL_COLUMNS",
    "Field",
    "arrow_schema",
    "iter_leaves",
    "schema_document",
]
