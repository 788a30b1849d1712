"""The lake's serving index: per event partition, json values -> the rows that hold them.

A json condition of the read API (`properties.plan is "pro"`, `properties.price > 499.5`)
otherwise parses the JSON of every row it scans (~150 ns a row: 50-150 ms for a day of
333k events, seconds for a month). The index lets the API read only the row groups
holding candidate rows.

`LAKE/_index/events/date=D/index-<id>.parquet`, one file per partition, holds one row
per scalar value (JSON string, number or boolean, at any depth, array elements
included) of the json columns (`properties`, `traits`):

    file  int16    position of the event file in the manifest (below)
    row   int32    the row number in that file
    ts    int64    the row's `timestamp` (microseconds since the epoch), to visit candidates
                   newest first
    col   string   the json column
    ptr   string   the RFC 6901 JSON pointer of the value (`/plan`, `/address/city`, `/tags/0`)
    kind  string   's' string, 'n' number, 'b' boolean
    str   string   the string value ('true'/'false' for booleans)
    num   double   the number, cast to DOUBLE exactly as the filter SQL casts it

sorted by (col, ptr, kind, str, num, file, row) in row groups of INDEX_ROW_GROUP rows, so
that a lookup reads the footer and the few row groups whose statistics hold its value.
Values are extracted with DuckDB's own JSON functions (`json_tree`), the functions the
filter SQL uses, so an index lookup finds every row the filter can match.

Next to it, `rows-<id>.arrow` is a row store: the partition's rows (every column, the
event files one after the other in manifest order) as an uncompressed Arrow IPC file of
ROW_BATCH-row record batches, read memory-mapped. A Parquet file decodes a whole row
group (16k rows of every column, 5-25 ms) to return one row; the row store returns it
without decoding anything. The API reads the rows of a few scattered candidates from
it. The price is disk: ~12x the partition's zstd Parquet size.

The manifest (footer key-value metadata `eventpipe.index`) lists the event files the index
was built from, with their sizes, modification times and row counts, and names the row
store: a reader trusts an index only while its partition holds exactly those files, so a
partition rewritten by any job (compaction, reprocessing, identity re-stitching) is
scanned until it is indexed again. Files appear atomically (written as hidden
temporaries, then renamed: the row store first, the index last); the older files of the
partition are deleted after the new ones are in place. Local lakes only (the read API
reads local lakes).

Built by `eventpipe compact` for every partition it compacts or finds without a valid
index (`build_partition_index`); measured in benchmarks/bench_api.py.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from eventpipe.schemas import EVENT_FIELDS, arrow_schema

INDEX = "_index"
INDEX_ROW_GROUP = 8192
ROW_BATCH = 256
ROW_STORE_COMPRESSION: str | None = None
"""Uncompressed: a memory-mapped batch is read without decoding (~0.05 ms a row against
~0.6 ms with lz4, which decodes each of the batch's ~70 buffers), for ~2.5x the size."""
MANIFEST_KEY = "eventpipe.index"
VERSION = 4
JSON_COLUMNS: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS if f.kind == "json")
NUMBER_TYPES = ("BIGINT", "UBIGINT", "DOUBLE")
_SCALAR_TYPES = ("VARCHAR", "BOOLEAN", *NUMBER_TYPES)


@dataclass(frozen=True)
class FileSignature:
    """What identifies one version of an event file: name, size, modification time."""

    name: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileSignature:
        stat = os.stat(path)
        return cls(os.path.basename(path), stat.st_size, stat.st_mtime_ns)


def event_files(partition_dir: str | os.PathLike[str]) -> list[str]:
    """The event files of a partition folder, as every reader of the lake sees them."""
    try:
        entries = list(os.scandir(partition_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        e.path
        for e in entries
        if e.name.endswith(".parquet") and not e.name.startswith((".", "_")) and e.is_file()
    )


def index_dir(lake: str | os.PathLike[str], partition_name: str) -> Path:
    """The index folder of the event partition `date=D`."""
    return Path(lake) / INDEX / "events" / partition_name


def index_files(folder: str | os.PathLike[str]) -> list[str]:
    """The index files of one partition's index folder, newest first."""
    try:
        names = [
            e.path
            for e in os.scandir(folder)
            if e.name.startswith("index-") and e.name.endswith(".parquet")
        ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(names, reverse=True)


@dataclass(frozen=True)
class Manifest:
    """What an index was built from: the event files (in index order), their row counts,
    and the row store file (a path)."""

    files: tuple[FileSignature, ...]
    file_rows: tuple[int, ...]
    row_store: str


def read_manifest(index_file: str, metadata: pq.FileMetaData | None = None) -> Manifest | None:
    """The manifest of an index file, from its footer (`metadata` when already read);
    None when it is not a usable index."""
    try:
        metadata = metadata or pq.read_metadata(index_file)
        manifest = json.loads((metadata.metadata or {})[MANIFEST_KEY.encode()])
        if manifest.get("version") != VERSION:
            return None
        return Manifest(
            tuple(FileSignature(f["name"], f["size"], f["mtime_ns"]) for f in manifest["files"]),
            tuple(int(n) for n in manifest["file_rows"]),
            os.path.join(os.path.dirname(index_file), manifest["row_store"]),
        )
    except (OSError, KeyError, TypeError, ValueError):
        return None


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


def build_partition_index(lake: str | os.PathLike[str], partition_dir: str) -> tuple[str, int]:
    """Index the event partition at `partition_dir`; returns (index file, entries).

    Older index files of the partition are deleted once the new one is in place.
    """
    files = event_files(partition_dir)
    signatures = [FileSignature.of(f) for f in files]
    folder = index_dir(lake, os.path.basename(os.path.normpath(partition_dir)))
    folder.mkdir(parents=True, exist_ok=True)
    build_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)
    final = folder / f"index-{build_id}.parquet"
    temporary = folder / f".{final.name}.tmp"
    row_store = folder / f"rows-{build_id}.arrow"
    file_rows = write_row_store(files, row_store)
    db = duckdb.connect(":memory:")
    try:
        db.execute("SET TimeZone = 'UTC'")
        db.execute("SET enable_progress_bar = false")
        db.execute(
            "CREATE TABLE nodes (file SMALLINT, row INTEGER, ts BIGINT, col VARCHAR, fullkey VARCHAR,"
            " path VARCHAR, key VARCHAR, type VARCHAR, value VARCHAR)"
        )
        for position, path in enumerate(files):
            for column in JSON_COLUMNS:
                db.execute(
                    f"""INSERT INTO nodes
                    SELECT {position}, t.file_row_number, epoch_us(t.timestamp), '{column}', j.fullkey, j.path, j.key,
                           j.type, CASE WHEN j.type IN {_SCALAR_TYPES} THEN j.value END
                    FROM read_parquet($file, file_row_number = true) AS t,
                         json_tree(t."{column}") AS j""",
                    {"file": path},
                )
        keys = db.execute("SELECT DISTINCT fullkey, path, key FROM nodes").fetchall()
        db.execute("CREATE TABLE pointers (fullkey VARCHAR, ptr VARCHAR)")
        pointers = _pointers(keys)
        db.executemany("INSERT INTO pointers VALUES (?, ?)", list(pointers.items()))
        manifest = json.dumps(
            {
                "version": VERSION,
                "files": [s.__dict__ for s in signatures],
                "file_rows": file_rows,
                "row_store": row_store.name,
            },
            sort_keys=True,
        )
        db.execute(
            f"""COPY (
                SELECT n.file, n.row, n.ts, n.col, p.ptr,
                       CASE n.type WHEN 'VARCHAR' THEN 's' WHEN 'BOOLEAN' THEN 'b' ELSE 'n' END
                           AS kind,
                       CASE WHEN n.type = 'VARCHAR' THEN CAST(n.value AS JSON) ->> '$'
                            WHEN n.type = 'BOOLEAN' THEN n.value END AS str,
                       CASE WHEN n.type IN {NUMBER_TYPES}
                            THEN TRY_CAST(CAST(n.value AS JSON) AS DOUBLE) END AS num
                FROM nodes AS n JOIN pointers AS p USING (fullkey)
                WHERE n.type IN {_SCALAR_TYPES}
                ORDER BY n.col, p.ptr, kind, str, num, n.file, n.row
            ) TO '{_sql_text(str(temporary))}' (FORMAT parquet, COMPRESSION zstd,
                ROW_GROUP_SIZE {INDEX_ROW_GROUP}, KV_METADATA {{'{MANIFEST_KEY}': '{_sql_text(manifest)}'}})"""
        )
        entries = int(
            db.execute("SELECT count(*) FROM nodes WHERE value IS NOT NULL").fetchone()[0]
        )
    finally:
        db.close()
    os.replace(temporary, final)
    for old in os.scandir(folder):
        if old.name.startswith(("index-", "rows-")) and build_id not in old.name:
            os.remove(old.path)
    return str(final), entries


def write_row_store(files: list[str], path: Path) -> list[int]:
    """Write the rows of `files` (one after the other) as the row store at `path`;
    returns each file's row count."""
    schema = arrow_schema()
    temporary = path.with_name(f".{path.name}.tmp")
    counts = []
    options = pa.ipc.IpcWriteOptions(compression=ROW_STORE_COMPRESSION)
    with (
        pa.OSFile(str(temporary), "wb") as sink,
        pa.ipc.new_file(sink, schema, options=options) as out,
    ):
        for f in files:
            # One chunk: every record batch but a file's last holds exactly ROW_BATCH rows.
            table = pq.read_table(f).select(schema.names).cast(schema).combine_chunks()
            counts.append(table.num_rows)
            out.write_table(table, max_chunksize=ROW_BATCH)
    os.replace(temporary, path)
    return counts


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


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
    return manifest is not None and manifest.files == current and os.path.isfile(manifest.row_store)


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
            except (OSError, duckdb.Error) as exc:
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
