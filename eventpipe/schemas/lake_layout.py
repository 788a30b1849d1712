"""The lake's layout, shared by its writers (io) and readers (api): lake paths and partitions.

A lake is a local folder or an object-store URL (gs://...); `is_remote` is the one test
of which. A table's partitions are its `date=YYYY-MM-DD` folders holding Parquet files.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass

PARTITION_RE = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


def is_remote(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is an object-store URL (gs://...) rather than a local path."""
    return "://" in str(path)


def partition_name(day: dt.date) -> str:
    """The folder name of the partition of `day`."""
    return f"date={day.isoformat()}"


@dataclass(frozen=True)
class Partition:
    """One `date=YYYY-MM-DD` folder of a table and its Parquet files (sorted paths)."""

    day: dt.date
    files: tuple[str, ...]
    table: str = ""
    path: str = ""

    @property
    def name(self) -> str:
        return partition_name(self.day)

    def total_bytes(self) -> int:
        """The size of its files."""
        if not is_remote(self.path):
            return sum(os.path.getsize(f) for f in self.files)
        from apache_beam.io.filesystems import FileSystems

        found = FileSystems.match(list(self.files))
        return sum(m.size_in_bytes for r in found for m in r.metadata_list)


def _parquet_files(folder: str) -> list[str]:
    """The Parquet files of one partition folder (none when it is gone meanwhile)."""
    if is_remote(folder):
        from apache_beam.io.filesystems import FileSystems

        found = FileSystems.match([FileSystems.join(folder, "*.parquet")])[0].metadata_list
        return sorted(m.path for m in found)
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):  # swapped away while we listed it
        return []
    return sorted(
        e.path
        for e in entries
        if e.name.endswith(".parquet") and not e.name.startswith((".", "_")) and e.is_file()
    )


def _folders(root: str) -> list[tuple[str, str]]:
    """(name, path) of the entries of a table folder."""
    if is_remote(root):
        from apache_beam.io.filesystems import FileSystems

        pattern = FileSystems.join(root, "date=*", "*.parquet")
        found = FileSystems.match([pattern])[0].metadata_list
        folders = {FileSystems.split(m.path)[0] for m in found}
        return [(FileSystems.split(f)[1], f) for f in folders]
    try:
        return [(e.name, e.path) for e in os.scandir(root) if e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_partitions(
    lake: str | os.PathLike[str],
    table: str,
    first: dt.date | None = None,
    last: dt.date | None = None,
) -> list[Partition]:
    """The partitions of `table` with at least one Parquet file, in [first, last]
    (inclusive; None: unbounded), oldest first. Works on local lakes and gs:// URLs."""
    lake = str(lake)
    root = f"{lake.rstrip('/')}/{table}" if is_remote(lake) else os.path.join(lake, table)
    partitions = []
    for name, folder in _folders(root):
        match = PARTITION_RE.fullmatch(name)
        if not match:
            continue
        try:
            day = dt.date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if (first and day < first) or (last and day > last):
            continue
        files = _parquet_files(folder)
        if files:
            partitions.append(Partition(day, tuple(files), table, folder))
    return sorted(partitions, key=lambda p: p.day)
