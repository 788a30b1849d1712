"""The schemas that cross the stages before the event table: raw records, parsed events,
and the archive column that carries an event as parsed to the writers (`LAKE/raw`)."""

from __future__ import annotations

import pyarrow as pa

RECORDS_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("first_index", pa.int32(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)
"""A chunk of raw records: the file, the 1-based line, the record text. `first_index`
is the position of the record's first event in its document: 0, except for the
parts a big JSON array document is split into (see io.raw_files)."""

PARSED_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("index", pa.int32(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("batch_context", pa.string()),
        pa.field("batch_sent_at", pa.timestamp("us", tz="UTC")),
        pa.field("received_at", pa.timestamp("us", tz="UTC")),
        pa.field("request_ip", pa.string()),
        pa.field("connection_id", pa.int32()),
    ]
)
"""One event of a record (its JSON text, `payload`) with what its record says of all its events."""

ARCHIVE_COLUMN = "_archive"
"""Extra column of normalised events: the event as parsed (PARSED_SCHEMA), for `LAKE/raw`."""
