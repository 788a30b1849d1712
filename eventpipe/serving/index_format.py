"""The files of the lake's serving index, their names and manifest (see index_build).

Per event partition `date=D`, in `LAKE/_index/events/date=D/`, three files of one build
(`<id>` a timestamp and random suffix):

- `index-<id>.arrow`: the json values (and those of INDEXED_COLUMNS) and their rows
  (`ValueTable`), with the manifest;
- `order-<id>.arrow`: per row, in the API's newest-first order, its event file, row
  number in that file, and `timestamp` (`RowOrder`);
- `rows-<id>.arrow`: the rows themselves, in the same order (`eventpipe.serving.row_store`).

Arrow IPC files, uncompressed (but the row store's blocks), read memory-mapped.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from eventpipe.serving.row_store import open_mapped

INDEX = "_index"
MANIFEST_KEY = b"eventpipe.index"
VERSION = 7
INDEXED_COLUMNS: dict[str, str] = {
    "userId": '"userId"',
    "anonymousId": '"anonymousId"',
    "context.session.id": 'CAST("context".session.id AS VARCHAR)',
}
"""Columns whose values the value table holds too, as text (key `<column> s `; an integer
as its decimal text), with the SQL that reads them."""
INTEGER_COLUMNS = frozenset(("context.session.id",))
KEY_SEPARATOR = " "
"""Between the parts of a value's key: `<json column> <kind> <JSON pointer>`."""


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
            if e.name.startswith("index-") and e.name.endswith(".arrow")
        ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(names, reverse=True)


def value_key(column: str, kind: str, pointer: str) -> str:
    """The key of the values of one json path and JSON kind ('s', 'n' or 'b')."""
    return KEY_SEPARATOR.join((column, kind, pointer))


@dataclass(frozen=True)
class Manifest:
    """What an index was built from: the event files (in index order) and their row
    counts; and the paths of its order file and row store."""

    files: tuple[FileSignature, ...]
    file_rows: tuple[int, ...]
    order_file: str
    row_store: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": VERSION,
                "files": [s.__dict__ for s in self.files],
                "file_rows": list(self.file_rows),
                "order": os.path.basename(self.order_file),
                "row_store": os.path.basename(self.row_store),
            },
            sort_keys=True,
        )


def parse_manifest(index_file: str, schema: pa.Schema) -> Manifest | None:
    """The manifest of an index file from its schema; None when it is not a usable index."""
    try:
        manifest = json.loads((schema.metadata or {})[MANIFEST_KEY])
        if manifest.get("version") != VERSION:
            return None
        folder = os.path.dirname(index_file)
        return Manifest(
            tuple(FileSignature(f["name"], f["size"], f["mtime_ns"]) for f in manifest["files"]),
            tuple(int(n) for n in manifest["file_rows"]),
            os.path.join(folder, manifest["order"]),
            os.path.join(folder, manifest["row_store"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_manifest(index_file: str) -> Manifest | None:
    """The manifest of an index file; None when it is not a usable index."""
    try:
        with pa.memory_map(index_file) as source:
            schema = pa.ipc.open_file(source).schema
    except (OSError, pa.ArrowInvalid):
        return None
    return parse_manifest(index_file, schema)


def write_arrow(table: pa.Table, path: Path, metadata: dict[bytes, bytes] | None = None) -> None:
    """`table` as one uncompressed record batch in an Arrow IPC file (written aside, then
    renamed)."""
    table = table.combine_chunks()
    if metadata:
        table = table.replace_schema_metadata(metadata)
    temporary = path.with_name(f".{path.name}.tmp")
    with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table, max_chunksize=max(1, table.num_rows))
    os.replace(temporary, path)


def read_arrow(path: str) -> tuple[pa.RecordBatch, pa.Schema]:
    """The one record batch of an Arrow IPC file, memory-mapped, and the file's schema."""
    reader = open_mapped(path)
    if reader.num_record_batches == 0:  # an empty table is written without a batch
        empty = [pa.array([], f.type) for f in reader.schema]
        return pa.record_batch(empty, schema=reader.schema), reader.schema
    if reader.num_record_batches != 1:
        raise ValueError(f"{path}: expected one record batch")
    return reader.get_batch(0), reader.schema


def numpy_view(array: pa.Array) -> np.ndarray:
    """A zero-copy numpy view of a primitive Arrow array without nulls."""
    return array.to_numpy(zero_copy_only=True)


@dataclass(frozen=True)
class RowOrder:
    """Per row of a partition, in the API's newest-first order (`timestamp`, `messageId`,
    file, row number, all descending): its file's position, its row number in that file,
    and its timestamp (microseconds)."""

    file: np.ndarray
    row: np.ndarray
    ts: np.ndarray

    @classmethod
    def open(cls, path: str) -> RowOrder:
        batch, _ = read_arrow(path)
        return cls(*(numpy_view(batch.column(c)) for c in ("file", "row", "ts")))


@dataclass(frozen=True)
class ValueTable:
    """The json values of a partition, one per distinct (key, value), sorted by key then
    value, each with its rows (sorted positions in RowOrder): `keys` maps each key to its
    range of values; `strs` (strings, 'true'/'false' for booleans; null for numbers) and
    `nums` (numbers as DOUBLE; 0 for the other kinds) hold the values; the rows of values [i, j) are
    `postings[offsets[i]:offsets[j]]`."""

    keys: dict[str, tuple[int, int]]
    strs: pa.StringArray
    nums: np.ndarray
    offsets: np.ndarray
    postings: np.ndarray

    @classmethod
    def open(cls, path: str) -> tuple[ValueTable, pa.Schema]:
        batch, schema = read_arrow(path)
        codes = batch.column("key")
        indices = numpy_view(codes.indices)
        starts = np.flatnonzero(np.diff(indices)) + 1 if len(indices) else np.array([], int)
        bounds = [0, *starts.tolist(), len(indices)]
        keys: dict[str, tuple[int, int]] = {}
        if len(indices):
            names = codes.dictionary.to_pylist()
            for low, high in itertools.pairwise(bounds):
                keys[names[indices[low]]] = (low, high)
        rows = batch.column("rows")
        table = cls(
            keys,
            batch.column("str"),
            numpy_view(batch.column("num")),
            numpy_view(rows.offsets),
            numpy_view(rows.values) if len(rows.values) else np.array([], np.int32),
        )
        return table, schema
