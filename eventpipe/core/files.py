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
