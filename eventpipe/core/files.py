"""Local files made durable: the one folder fsync of every writer."""

from __future__ import annotations

import os


def fsync_folder(folder: str) -> None:
    """Make the creation, rename or removal of entries of the local `folder` durable (the
    landing log's segments, the lake transaction's files)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: str, data: bytes | None, aside_suffix: str = ".pending") -> None:
    """Make the local file `path` hold `data` (written aside, fsynced, renamed over it, the
    folder fsynced), or delete it (`data` None): a reader sees the old file or the new one."""
    folder = os.path.dirname(path) or "."
    if data is None:
        os.unlink(path)
    else:
        aside = path + aside_suffix
        with open(aside, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, path)
    fsync_folder(folder)
