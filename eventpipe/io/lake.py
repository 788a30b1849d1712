"""Sink: the Parquet lake, written atomically.

Layout: `LAKE/events/date=YYYY-MM-DD/part-*.parquet` (date of `timestamp`),
`LAKE/raw/date=YYYY-MM-DD/part-*.parquet` (the same events as parsed, for
reprocessing), `LAKE/failed/date=YYYY-MM-DD/part-*.parquet` (date of
`receivedAt`), `LAKE/identity/` (the identity graph), plus
`LAKE/_runs/<run_id>.json`, one summary per finished run.

Atomicity: writers put files under `LAKE/_staging/<run_id>/`; one final step
(after every writer is done) records the list of files in `_COMMITTING`, then
renames them into place and removes the staging folder. A killed run leaves
only its staging folder: the next writer deletes it when it never reached
`_COMMITTING` (nothing of it was visible), or finishes its renames when it did and
records the dead run in `_runs/` from the counts its journal carries (every writer
runs this recovery first: `io.lake_lock.open_writer`). Raw files are renamed before
event files, so a visible event always has its archive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import time
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from eventpipe.io.partition_swap import swap_partition
from eventpipe.schemas import iter_leaves

log = logging.getLogger(__name__)

EVENTS = "events"
FAILED = "failed"
RAW = "raw"  # the events as parsed, for reprocessing (see io.lake_sink)
STAGING = "_staging"
RUNS = "_runs"
COMMITTING = "_COMMITTING"
RUNNING = "_RUNNING.json"
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


def time_ordered_id(now: datetime) -> str:
    """A unique id that sorts in time order: UTC time to the microsecond plus a random suffix.

    Runs, compactions and index builds are named with it, so the newest is the
    greatest name even when two start within the same second.
    """
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


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


def make_dirs(path: str) -> None:
    """Create the folder `path` and its parents (nothing to do on GCS, which has none)."""
    with contextlib.suppress(OSError):  # exists already, or (GCS) there are no folders
        FileSystems.mkdirs(path)


def fsync_folder(folder: str) -> None:
    """Make the creation, rename or removal of entries of the local `folder` durable (the
    one folder fsync of the lake's writers: the landing log, the identity store)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    """Read one lake file (any Beam filesystem path), whole or only `columns`."""
    with FileSystems.open(path) as handle:
        return pq.read_table(handle, columns=columns)


def write_parquet(table: pa.Table, path: str, event_table: bool) -> None:
    """Write one lake file with the lake's settings (event files: dictionaries and Bloom filters)."""
    make_dirs(os.path.dirname(path) if "://" not in path else path)
    options: dict = {"compression": "zstd", "row_group_size": ROW_GROUP_ROWS}
    if event_table:
        options["use_dictionary"] = DICTIONARY_COLUMNS
        ndv = {"ndv": ROW_GROUP_ROWS, "fpp": 0.01}
        options["bloom_filter_options"] = dict.fromkeys(BLOOM_COLUMNS, ndv)
    else:  # raw and failed rows: the record texts rarely repeat, the rest often does
        options["use_dictionary"] = [c for c in table.column_names if c not in FREE_TEXT]
    with FileSystems.create(path, mime_type="application/octet-stream") as handle:
        pq.write_table(table, handle, **options)


def commit_files(
    lake: str,
    run_id: str,
    pairs: list[tuple[str, str]],
    replace: list[tuple[str, str]] = (),
    counts: dict | None = None,
) -> None:
    """Make a run's staged work visible: record it, then do it, then drop the staging folder.

    `pairs` are (staged file, final path) to add; `replace` are (staged partition
    folder, partition folder) to swap whole (see io.partition_swap). `counts` (e.g.
    rows written and failed) go into the journal: if the run dies while committing,
    the run that completes the commit records them for it in `_runs/`.
    """
    staging = lake_path(lake, STAGING, run_id)
    marker = lake_path(staging, COMMITTING)
    pairs = sorted(pairs, key=lambda pair: _commit_order(pair[1]))
    journal = {"run": run_id, "add": pairs, "replace": list(replace), "counts": counts or {}}
    # Written aside, then renamed: a run killed while writing it has no journal (and
    # nothing visible), never an empty or partial one.
    pending = marker + ".pending"
    with FileSystems.create(pending) as handle:
        handle.write(json.dumps(journal).encode())
    FileSystems.rename([pending], [marker])
    _finish_commit(staging, journal)


def _commit_order(final: str) -> tuple[bool, str]:
    """Raw files first: a visible event always has its archive (and events before failed)."""
    return (f"/{RAW}/" not in final, final)


def _finish_commit(staging: str, journal: dict) -> None:
    for number, (staged_folder, partition) in enumerate(journal.get("replace", [])):
        swap_partition(staged_folder, partition, journal["run"])
        if number == 0:
            pause_point("commit-swapped-first")
    pending = [(s, d) for s, d in journal["add"] if FileSystems.exists(s)]
    for _, dest in pending:
        if "://" not in dest:
            make_dirs(os.path.dirname(dest))
    if pending:
        FileSystems.rename([pending[0][0]], [pending[0][1]])
        pause_point("commit-renamed-first")
        if pending[1:]:
            FileSystems.rename([s for s, _ in pending[1:]], [d for _, d in pending[1:]])
    FileSystems.delete([staging])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_running(lake: str, run_id: str, job: str = "") -> None:
    """Record that `run_id` (of `job`) is in progress on this host (so cleanup leaves it alone)."""
    path = lake_path(lake, STAGING, run_id, RUNNING)
    if "://" not in path:
        make_dirs(os.path.dirname(path))
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "job": job}
    with FileSystems.create(path) as handle:
        handle.write(json.dumps(owner).encode())


def recover_abandoned_runs(lake: str, by_run: str = "", dry_run: bool = False) -> list[str]:
    """Finish or remove the staging folders of runs that died. Returns what was done
    (with `dry_run`, what would be done, and nothing is).

    A run whose `_RUNNING.json` names a live process on this host is left alone;
    runs of other hosts are left alone too (they may be running). A completed commit
    is recorded in `_runs/<dead run>.json` (status `recovered`, `recovered_by`), with
    the counts of its journal, so the ledger covers every row the lake holds.
    """
    staging_root = lake_path(lake, STAGING)
    if not FileSystems.exists(staging_root):
        return []
    done = []
    runs = {
        m.path[len(staging_root) :].strip("/").split("/")[0]
        for m in FileSystems.match([lake_path(staging_root, "*", RUNNING)])[0].metadata_list
    }
    for run_id in sorted(runs):
        staging = lake_path(staging_root, run_id)
        with FileSystems.open(lake_path(staging, RUNNING)) as handle:
            owner = json.loads(handle.read())
        if owner.get("host") != socket.gethostname() or _pid_alive(int(owner.get("pid", 0))):
            continue
        marker = lake_path(staging, COMMITTING)
        if not FileSystems.exists(marker):
            if not dry_run:
                FileSystems.delete([staging])
            done.append(f"removed the staged files of abandoned run {run_id}")
            continue
        with FileSystems.open(marker) as handle:
            journal = json.loads(handle.read())
        if isinstance(journal, list):  # written before partition swaps existed
            journal = {"run": run_id, "add": journal}
        if not dry_run:
            _finish_commit(staging, journal)
            record = {"run_id": run_id, "job": owner.get("job", ""), "status": "recovered"}
            record["recovered_by"] = by_run
            write_run_summary(lake, run_id, {**record, **journal.get("counts", {})})
        done.append(f"completed the commit of interrupted run {run_id}")
    if dry_run:
        done = [f"would have {note}" for note in done]
    return done


def write_run_summary(lake: str, run_id: str, summary: dict) -> str:
    """Write `_runs/<run_id>.json` and return its path."""
    path = lake_path(lake, RUNS, f"{run_id}.json")
    if "://" not in path:
        make_dirs(os.path.dirname(path))
    with FileSystems.create(path) as handle:
        handle.write(json.dumps(summary, indent=2, default=str).encode())
    return path
