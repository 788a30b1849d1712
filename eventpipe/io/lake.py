"""Sink: the Parquet lake, written atomically.

Layout: `LAKE/events/date=YYYY-MM-DD/part-*.parquet` (date of `timestamp`),
`LAKE/raw/date=YYYY-MM-DD/part-*.parquet` (the same events as parsed, for
reprocessing), `LAKE/failed/date=YYYY-MM-DD/part-*.parquet` (date of
`receivedAt`), `LAKE/identity/` (the identity graph), plus
`LAKE/_runs/<run_id>.json`, one summary per finished run.

Files become visible through one lake transaction (`io.lake_transaction`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from eventpipe.schemas import iter_leaves
from eventpipe.schemas.lake_layout import is_remote

log = logging.getLogger(__name__)

EVENTS = "events"
FAILED = "failed"
RAW = "raw"  # the events as parsed, for reprocessing (see io.lake_sink)
STAGING = "_staging"
RUNS = "_runs"
ROW_GROUP_ROWS = 16_384
PAUSE_AT = "EVENTPIPE_PAUSE_AT"  # test hook: the name of a moment to pause at (see pause_point)
PAUSE_FILE = "EVENTPIPE_PAUSE_FILE"  # ... and the file that says it was reached


def pause_point(moment: str) -> None:
    """Test hook: pause here while `$EVENTPIPE_PAUSE_AT` names `moment`.

    The job writes its pid to `$EVENTPIPE_PAUSE_FILE` and waits until that file is
    removed (or the process is killed), so a test can kill a job at an exact moment
    and check that it was reached. Does nothing unless both variables are set.
    """
    marker = os.environ.get(PAUSE_FILE)
    if os.environ.get(PAUSE_AT) != moment or not marker:
        return
    with open(marker + ".tmp", "w") as handle:
        handle.write(f"{moment} {os.getpid()}")
    os.replace(marker + ".tmp", marker)
    while os.path.exists(marker):
        time.sleep(0.05)


# Point lookups of the read API (a user, a session, a message) skip row groups by these.
BLOOM_COLUMNS = ("userId", "anonymousId", "messageId", "context.session.id")
# Columns whose values rarely repeat: dictionary encoding would be tried and dropped
# (measured: a third of the write time, and bigger files).
HIGH_CARDINALITY = frozenset(
    {
        "kpid", "messageId", "anonymousId", "userId", "previousId", "groupId",
        "receivedAt", "sentAt", "originalTimestamp", "timestamp", "properties", "traits",
        "context.ip", "context.session.id", "context.device.id", "context.device.advertisingId",
        "context.device.token", "context.location.latitude", "context.location.longitude",
        "context.location.speed",
    }
)  # fmt: skip
FREE_TEXT = frozenset({"payload", "raw"})  # raw/ and failed/ columns holding record texts
DICTIONARY_COLUMNS = [path for path, _ in iter_leaves() if path not in HIGH_CARDINALITY]


def lake_path(lake: str, *parts: str) -> str:
    """A path inside the lake (works for local paths and gs:// URLs)."""
    return FileSystems.join(lake, *parts)


def make_parent(path: str) -> None:
    """Create the parent folder of a local path (object stores have no folders)."""
    if not is_remote(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)


def make_dirs(path: str) -> None:
    """Create the folder `path` and its parents (nothing to do on GCS, which has none)."""
    with contextlib.suppress(OSError):  # exists already, or (GCS) there are no folders
        FileSystems.mkdirs(path)


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    """Read one lake file (any Beam filesystem path), whole or only `columns`."""
    with FileSystems.open(path) as handle:
        return pq.read_table(handle, columns=columns)


def write_parquet(table: pa.Table, path: str, event_table: bool) -> None:
    """Write one lake file with the lake's settings (event files: dictionaries and Bloom filters)."""
    make_parent(path)
    options: dict = {"compression": "zstd", "row_group_size": ROW_GROUP_ROWS}
    if event_table:
        options["use_dictionary"] = DICTIONARY_COLUMNS
        ndv = {"ndv": ROW_GROUP_ROWS, "fpp": 0.01}
        options["bloom_filter_options"] = dict.fromkeys(BLOOM_COLUMNS, ndv)
    else:  # raw and failed rows: the record texts rarely repeat, the rest often does
        options["use_dictionary"] = [c for c in table.column_names if c not in FREE_TEXT]
    with FileSystems.create(path, mime_type="application/octet-stream") as handle:
        pq.write_table(table, handle, **options)


def write_run_summary(lake: str, run_id: str, summary: dict) -> str:
    """Write `_runs/<run_id>.json` and return its path."""
    path = lake_path(lake, RUNS, f"{run_id}.json")
    make_parent(path)
    with FileSystems.create(path) as handle:
        handle.write(json.dumps(summary, indent=2, default=str).encode())
    return path
