"""Erasure in the lake: find the files holding a person's rows, stage their partitions
without those rows, and keep the serving index in step (docs/erasure.md).

- `find_files`: the files of a table holding rows of the subjects. For events, one DuckDB
  query per id column (`userId IN (...)`...), so each is pruned by the Parquet Bloom
  filters the lake writes on userId and anonymousId; raw and failed rows are found by a
  substring test first, then exactly (`io.erasure_match`).
- `stage_table_erasure`: each partition holding such a file is replaced in the caller's
  lake transaction (`replace_partition`) by a staged folder in which the other files are
  hard links of the originals and each affected file is rewritten without the rows, in
  the same order, with the lake's writer settings. At commit the folder exchange removes
  the old files (physically: the staged folder that receives them is deleted).
- `refresh_indexes`: after the commit, the serving index of each rewritten day is rebuilt
  (when it had one) or removed (when the day is empty), and every index that no longer
  matches its partition's files (the API does not use those) is deleted, since it may
  hold older copies of rows.

Local lakes only (DuckDB reads the files; hard links).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.core.duck import connect
from eventpipe.io.erasure_match import Subjects
from eventpipe.io.lake import EVENTS, FAILED, RAW, read_parquet, write_parquet
from eventpipe.io.lake_transaction import LakeTransaction
from eventpipe.schemas.lake_layout import Partition, is_remote, list_partitions
from eventpipe.serving.index_build import build_partition_index, index_is_current
from eventpipe.serving.index_format import INDEX, event_files, index_dir, index_files

TABLES = (EVENTS, RAW, FAILED)


def check_local(lake: str) -> None:
    """Erasure rewrites files with DuckDB and hard links: ValueError for a gs:// lake."""
    if is_remote(lake):
        raise ValueError(f"erase needs a local lake, not {lake}")


def _conditions(subjects: Subjects, table: str) -> list[str]:
    if table == EVENTS:
        return subjects.event_conditions()
    return [subjects.archive_sql() if table == RAW else subjects.failed_sql()]


def _predicate(subjects: Subjects, table: str) -> str:
    if table == EVENTS:
        return subjects.event_sql()
    return _conditions(subjects, table)[0]


def find_files(
    lake: str, table: str, subjects: Subjects, db: duckdb.DuckDBPyConnection | None = None
) -> set[str]:
    """The files of `table` that hold at least one row of `subjects`."""
    files = [f for part in list_partitions(lake, table) for f in part.files]
    if not files or not subjects:
        return set()
    db = db or connect(threads=2)
    found: set[str] = set()
    for condition in _conditions(subjects, table):
        rows = db.execute(
            "SELECT DISTINCT filename FROM read_parquet($files, filename = true, "
            f"union_by_name = true) WHERE {condition}",
            {"files": files},
        ).fetchall()
        found.update(row[0] for row in rows)
    return found


def profile_ids(
    lake: str, subjects: Subjects, db: duckdb.DuckDBPyConnection | None = None
) -> tuple[set[str], set[str]]:
    """(user ids, anonymous ids) that the stored events of the subjects' kpids carry (the
    identity map may be older than the events' kpids)."""
    files = [f for part in list_partitions(lake, EVENTS) for f in part.files]
    if not files or not subjects.kpids:
        return set(), set()
    kpids = Subjects(kpids=subjects.kpids, connections=subjects.connections)
    db = db or connect(threads=2)
    rows = db.execute(
        'SELECT DISTINCT "userId", "previousId", "anonymousId" FROM read_parquet($files, '
        f"union_by_name = true) WHERE {kpids.event_sql()}",
        {"files": files},
    ).fetchall()
    users = {v for user, previous, _ in rows for v in (user, previous) if v is not None}
    return users, {anon for _, _, anon in rows if anon is not None}


def orphaned_ids(
    lake: str, subjects: Subjects, db: duckdb.DuckDBPyConnection | None = None
) -> tuple[set[str], set[str]]:
    """(user ids, anonymous ids) that no event carries once the subjects' events are gone:
    the subjects' own ids and every id their events carry (a derived anonymousId, an
    alias's other id), minus those that other events still carry (another workspace's,
    with --workspace). Their identity entries go."""
    users, anonymous = set(subjects.user_ids), set(subjects.anonymous_ids)
    files = [f for part in list_partitions(lake, EVENTS) for f in part.files]
    if not files:
        return users, anonymous
    db = db or connect(threads=2)
    source = "read_parquet($files, union_by_name = true)"
    columns = '"userId", "previousId", "anonymousId"'
    erased = db.execute(
        f"SELECT DISTINCT {columns} FROM {source} WHERE {subjects.event_sql()}", {"files": files}
    ).fetchall()
    users |= {v for u, p, _ in erased for v in (u, p) if v is not None}
    anonymous |= {a for _, _, a in erased if a is not None}
    carried = Subjects(frozenset(users), frozenset(anonymous))
    kept = db.execute(
        f"SELECT DISTINCT {columns} FROM {source} WHERE ({carried.event_sql()}) "
        f"AND NOT coalesce({subjects.event_sql()}, FALSE)",
        {"files": files},
    ).fetchall()
    users -= {v for u, p, _ in kept for v in (u, p)}
    anonymous -= {a for _, _, a in kept}
    return users, anonymous


@dataclass
class TableErasure:
    """What erasing one table staged: rows removed, partitions rewritten."""

    table: str
    removed: int = 0
    partitions: list[str] = field(default_factory=list)


def _without(db: duckdb.DuckDBPyConnection, rows: pa.Table, predicate: str) -> pa.Table:
    """`rows` minus those `predicate` holds for, in their order."""
    db.register("erase_input", rows)
    try:
        hits = db.execute(f"SELECT coalesce({predicate}, FALSE) FROM erase_input").fetchnumpy()
    finally:
        db.unregister("erase_input")
    mask = pa.array(next(iter(hits.values())), pa.bool_())
    return rows.filter(pc.invert(mask))


def stage_partition(
    txn: LakeTransaction,
    part: Partition,
    affected: set[str],
    predicate: str,
    db: duckdb.DuckDBPyConnection,
) -> int:
    """Stage `part` without the rows of `affected` files that `predicate` holds for; returns
    the rows removed. The partition is replaced whole when `txn` commits."""
    staged = txn.replace_partition(part.table, part.name, old=list(part.files))
    os.makedirs(staged, exist_ok=True)
    removed = 0
    for number, path in enumerate(part.files):
        name = os.path.basename(path)
        if path not in affected:
            try:
                os.link(path, os.path.join(staged, name))
            except OSError:  # a file system without hard links: a copy
                shutil.copy2(path, os.path.join(staged, name))
            continue
        rows = read_parquet(path)
        kept = _without(db, rows, predicate)
        removed += rows.num_rows - kept.num_rows
        if kept.num_rows:
            target = os.path.join(staged, f"part-erase-{txn.id}-{number}.parquet")
            write_parquet(kept, target, event_table=part.table == EVENTS)
    return removed


def stage_table_erasure(
    txn: LakeTransaction,
    table: str,
    subjects: Subjects,
    db: duckdb.DuckDBPyConnection | None = None,
) -> TableErasure:
    """Stage, in `txn`, every partition of `table` that holds rows of `subjects`, without
    them (only those partitions)."""
    db = db or connect(threads=2)
    result = TableErasure(table)
    affected = find_files(txn.lake, table, subjects, db)
    if not affected:
        return result
    predicate = _predicate(subjects, table)
    for part in list_partitions(txn.lake, table):
        if affected.intersection(part.files):
            result.removed += stage_partition(txn, part, affected, predicate, db)
            result.partitions.append(part.name)
    return result


def _remove_index(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    shutil.rmtree(folder)
    return True


def refresh_indexes(
    lake: str, days: list[str], progress: Callable[[str], None] | None = None
) -> list[str]:
    """Rebuild the serving index of the rewritten event partitions `days` (`date=D`) that had
    one, remove those of emptied days, and delete every stale index; returns notes."""
    notes = []
    for name in days:
        folder = index_dir(lake, name)
        partition = os.path.join(lake, EVENTS, name)
        if not index_files(folder):
            continue
        if event_files(partition):
            build_partition_index(lake, partition)
            notes.append(f"rebuilt the serving index of events/{name}")
        elif _remove_index(folder):
            notes.append(f"removed the serving index of events/{name} (no event left)")
    root = Path(lake) / INDEX / EVENTS
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        partition = os.path.join(lake, EVENTS, folder.name)
        if not index_is_current(lake, partition) and _remove_index(folder):
            notes.append(f"removed the stale serving index of events/{folder.name}")
    for note in notes if progress else []:
        progress(note)
    return notes
