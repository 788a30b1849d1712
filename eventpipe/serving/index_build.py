"""The lake's serving index: per event partition, json values -> the rows that hold them,
and the partition's rows in a form that reads scattered rows fast.

Three files per partition (`eventpipe.serving.index_format`): the row order, the value table
(json, user, anonymous and session values -> row numbers in that order, newest first)
and the row store (`eventpipe.serving.row_store`). A reader trusts an index only while its
partition holds exactly the files its manifest lists. Built by `eventpipe compact`
(`build_partition_index`). The format in full: docs/read-api.md ("The serving index").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from eventpipe.core.ids import time_ordered_id
from eventpipe.schemas import EVENT_FIELDS, arrow_schema
from eventpipe.serving.index_format import (
    INDEX,
    INDEXED_COLUMNS,
    MANIFEST_KEY,
    FileSignature,
    Manifest,
    event_files,
    index_dir,
    index_files,
    read_manifest,
    write_arrow,
)
from eventpipe.serving.row_store import write_row_store

__all__ = ["INDEX", "build_partition_index", "index_is_current", "index_lake"]

JSON_COLUMNS: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS if f.kind == "json")
NUMBER_TYPES = ("BIGINT", "UBIGINT", "DOUBLE")
_SCALAR_TYPES = ("VARCHAR", "BOOLEAN", *NUMBER_TYPES)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _pointers(rows: list[tuple[str, str | None, str | None]]) -> dict[str, str]:
    """JSON pointers of json_tree's `fullkey`s, from each node's (fullkey, parent path, key)."""
    parent = {full: (path, key) for full, path, key in rows}
    pointers: dict[str, str] = {"$": ""}

    def pointer(full: str) -> str:
        chain = []
        while full not in pointers:
            chain.append(full)
            full = parent[full][0] or "$"
        for node in reversed(chain):
            path, key = parent[node]
            pointers[node] = pointers[path or "$"] + "/" + _escape(key or "")
        return pointers[chain[0]] if chain else pointers[full]

    for full in parent:
        pointer(full)
    return pointers


def read_partition(files: list[str]) -> pa.Table:
    """The rows of `files`, one after the other, with the schema of the event table."""
    schema = arrow_schema()
    tables = [pq.read_table(f).select(schema.names).cast(schema) for f in files]
    return pa.concat_tables(tables).combine_chunks()


def newest_first(table: pa.Table, file_rows: list[int]) -> pa.Table:
    """The row order of a partition's rows (`file`, `row`, `ts` per row, newest first: by
    timestamp, messageId, file and row number, descending, nulls last as the API sorts)."""
    file = np.repeat(np.arange(len(file_rows), dtype=np.int16), file_rows)
    row = np.concatenate([np.arange(n, dtype=np.int32) for n in file_rows] or [[]])
    keys = pa.table(
        {
            "ts": pc.cast(table["timestamp"], pa.int64()),
            "message": table["messageId"],
            "file": pa.array(file, pa.int16()),
            "row": pa.array(row.astype(np.int32), pa.int32()),
        }
    )
    order = pc.sort_indices(
        keys, sort_keys=[(c, "descending", "at_end") for c in ("ts", "message", "file", "row")]
    )
    return keys.select(["file", "row", "ts"]).take(order)


def _value_table(db: duckdb.DuckDBPyConnection, files: list[str], order: pa.Table) -> pa.Table:
    """The value table of the partition's `files` (see the module doc)."""
    db.execute(
        "CREATE TABLE nodes (file SMALLINT, row INTEGER, col VARCHAR, fullkey VARCHAR,"
        " path VARCHAR, key VARCHAR, type VARCHAR, value VARCHAR)"
    )
    db.execute("CREATE TABLE strings (file SMALLINT, row INTEGER, col VARCHAR, str VARCHAR)")
    for position, path in enumerate(files):
        for column, value in INDEXED_COLUMNS.items():
            db.execute(
                f"""INSERT INTO strings
                SELECT {position}, file_row_number, '{column}', {value}
                FROM read_parquet($file, file_row_number = true) WHERE {value} IS NOT NULL""",
                {"file": path},
            )
        for column in JSON_COLUMNS:
            db.execute(
                f"""INSERT INTO nodes
                SELECT {position}, t.file_row_number, '{column}', j.fullkey, j.path, j.key,
                       j.type, CASE WHEN j.type IN {_SCALAR_TYPES} THEN j.value END
                FROM read_parquet($file, file_row_number = true) AS t,
                     json_tree(t."{column}") AS j""",
                {"file": path},
            )
    keys = db.execute("SELECT DISTINCT fullkey, path, key FROM nodes").fetchall()
    db.execute("CREATE TABLE pointers (fullkey VARCHAR, ptr VARCHAR)")
    db.executemany("INSERT INTO pointers VALUES (?, ?)", list(_pointers(keys).items()))
    ranks = pa.table(
        {
            "file": order["file"],
            "row": order["row"],
            "ord": pa.array(np.arange(order.num_rows, dtype=np.int32)),
        }
    )
    db.register("ranks", ranks)
    table = db.sql(
        f"""
        WITH typed AS (
            SELECT n.file, n.row, n.col, p.ptr, n.type, n.value,
                   CASE n.type WHEN 'VARCHAR' THEN 's' WHEN 'BOOLEAN' THEN 'b' ELSE 'n' END
                       AS kind
            FROM nodes AS n JOIN pointers AS p USING (fullkey)
            WHERE n.value IS NOT NULL
        ), entries AS (
            SELECT DISTINCT t.col || ' ' || t.kind || ' ' || t.ptr AS key,
                   CASE t.type WHEN 'VARCHAR' THEN CAST(t.value AS JSON) ->> '$'
                               WHEN 'BOOLEAN' THEN t.value END AS str,
                   CASE WHEN t.type IN {NUMBER_TYPES}
                        THEN TRY_CAST(CAST(t.value AS JSON) AS DOUBLE) END AS num,
                   r.ord
            FROM typed AS t JOIN ranks AS r ON r.file = t.file AND r.row = t.row
            UNION ALL
            SELECT DISTINCT s.col || ' s ' AS key, s.str, NULL AS num, r.ord
            FROM strings AS s JOIN ranks AS r ON r.file = s.file AND r.row = s.row
        )
        SELECT key, str, coalesce(num, 0.0) AS num, list(ord ORDER BY ord) AS rows
        FROM entries
        WHERE str IS NOT NULL OR num IS NOT NULL
        GROUP BY key, str, num
        ORDER BY key, str, num"""
    ).to_arrow_table()
    return pa.table(
        {
            "key": pc.dictionary_encode(table["key"].cast(pa.string())),
            "str": table["str"].cast(pa.string()),
            "num": table["num"],
            "rows": table["rows"].cast(pa.list_(pa.int32())),
        }
    )


def build_partition_index(lake: str | os.PathLike[str], partition_dir: str) -> tuple[str, int]:
    """Index the event partition at `partition_dir`; returns (value table file, entries).

    Older index files of the partition are deleted once the new ones are in place.
    """
    files = event_files(partition_dir)
    signatures = tuple(FileSignature.of(f) for f in files)
    folder = index_dir(lake, os.path.basename(os.path.normpath(partition_dir)))
    folder.mkdir(parents=True, exist_ok=True)
    build_id = time_ordered_id(datetime.now(UTC))
    final = folder / f"index-{build_id}.arrow"
    order_file, row_store = folder / f"order-{build_id}.arrow", folder / f"rows-{build_id}.arrow"
    rows = read_partition(files)
    file_rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
    order = newest_first(rows, file_rows)
    write_arrow(order, order_file)
    positions = np.concatenate(([0], np.cumsum(file_rows)[:-1])).astype(np.int64)
    in_order = np.asarray(order["file"]).astype(np.int64)
    write_row_store(rows.take(positions[in_order] + np.asarray(order["row"])), row_store)
    del rows
    db = duckdb.connect(":memory:")
    try:
        db.execute("SET TimeZone = 'UTC'")
        db.execute("SET enable_progress_bar = false")
        values = _value_table(db, files, order)
    finally:
        db.close()
    manifest = Manifest(signatures, tuple(file_rows), str(order_file), str(row_store))
    write_arrow(values, final, {MANIFEST_KEY: manifest.to_json().encode()})
    for old in os.scandir(folder):
        if old.name.startswith(("index-", "rows-", "order-")) and build_id not in old.name:
            os.remove(old.path)
    return str(final), len(values["rows"].combine_chunks().values)


def index_is_current(lake: str | os.PathLike[str], partition_dir: str) -> bool:
    """Whether the partition has an index built from exactly its current files."""
    found = index_files(index_dir(lake, os.path.basename(os.path.normpath(partition_dir))))
    if not found:
        return False
    manifest = read_manifest(found[0])
    try:
        current = tuple(FileSignature.of(f) for f in event_files(partition_dir))
    except FileNotFoundError:
        return False
    return (
        manifest is not None
        and manifest.files == current
        and all(os.path.isfile(f) for f in (manifest.order_file, manifest.row_store))
    )


def remove_stale_indexes(lake: str | os.PathLike[str]) -> list[str]:
    """Delete the index folders of partitions that no longer exist; returns what was deleted."""
    root = Path(lake) / INDEX / "events"
    removed = []
    if not root.is_dir():
        return removed
    for folder in sorted(root.iterdir()):
        if not (Path(lake) / "events" / folder.name).is_dir():
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
            removed.append(str(folder))
    return removed


@dataclass
class IndexReport:
    """What indexing the event partitions did (or, in a dry run, would do)."""

    partitions: int = 0  # partitions in range
    indexed: int = 0  # partitions (re)indexed
    entries: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def line(self, dry_run: bool = False) -> str:
        """One summary line for the job's output."""
        parts = [
            f"serving index: {'would index' if dry_run else 'indexed'} {self.indexed} of "
            f"{self.partitions} event partitions (the others were current)"
        ]
        if not dry_run:
            parts += [f"{self.entries} json values", f"{self.seconds:.1f} s"]
        parts += [f"{len(self.errors)} failed"] if self.errors else []
        return ", ".join(parts)


def index_lake(
    lake: str,
    first: date | None = None,
    last: date | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> IndexReport:
    """Index every event partition in [first, last] whose index is missing or stale, and
    delete the indexes of partitions that no longer exist. A partition that fails is
    reported in `errors` (the API scans it); the others go on."""
    started = time.monotonic()
    report = IndexReport()
    events = Path(lake) / "events"
    folders = sorted(events.glob("date=*")) if events.is_dir() else []
    for folder in folders:
        try:
            day = date.fromisoformat(folder.name.removeprefix("date="))
        except ValueError:
            continue
        if (first and day < first) or (last and day > last) or not event_files(folder):
            continue
        report.partitions += 1
        if index_is_current(lake, str(folder)):
            continue
        if not dry_run:
            try:
                _, entries = build_partition_index(lake, str(folder))
            except (OSError, duckdb.Error, pa.ArrowException) as exc:
                report.errors.append(f"events/{folder.name}: {exc}")
                if progress:
                    progress(f"indexing events/{folder.name} FAILED (it is scanned): {exc}")
                continue
            report.entries += entries
        report.indexed += 1
        if progress:
            progress(("would index " if dry_run else "indexed ") + f"events/{folder.name}")
    if not dry_run:
        for removed in remove_stale_indexes(lake):
            if progress:
                progress(f"removed the index of a partition that is gone: {removed}")
    report.seconds = time.monotonic() - started
    return report
