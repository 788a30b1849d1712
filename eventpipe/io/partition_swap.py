"""Replacing a whole date partition at once (reprocessing, identity re-stitching).

A job writes the partition's new files into a staged folder,
`LAKE/_staging/<run>/<table>/date=D/`, with a marker file `_RUN` naming the run.
The swap exchanges the staged folder and the partition folder in one
`renameat2(RENAME_EXCHANGE)` system call (Linux, local lakes): a reader sees the
old partition or the new one, never a mix and never nothing. The old files then
sit in the staged folder and are deleted. A partition that does not exist yet is
simply renamed into place.

Recovery: after an exchange the partition holds the run's `_RUN` marker, so an
interrupted list of swaps is finished by doing only those whose partition does
not carry the marker yet (see `lake.recover_abandoned_runs`).

On object stores (gs://) there is no atomic folder exchange: the old files are
deleted, then the new ones renamed in (repeatable after a crash: the run's files
carry its id); a reader in between sees the partition empty or half-filled. Run reprocessing there while nothing reads the lake, or use
the BigQuery sink (partition-level WRITE_TRUNCATE).
"""

from __future__ import annotations

import ctypes
import errno
import os

from apache_beam.io.filesystems import FileSystems

MARKER = "_RUN"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def mark_staged_partition(folder: str, run_id: str) -> None:
    """Create a staged partition folder (if needed) and its `_RUN` marker."""
    if "://" not in folder:
        os.makedirs(folder, exist_ok=True)
    with FileSystems.create(FileSystems.join(folder, MARKER)) as handle:
        handle.write(run_id.encode())


def _swapped_by(folder: str) -> str | None:
    path = FileSystems.join(folder, MARKER)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        return handle.read().decode()


def exchange_folders(a: str, b: str) -> None:
    """Exchange two local folders in one system call (OSError ENOSYS/EINVAL where the file
    system cannot)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"cannot exchange {a} and {b}: {os.strerror(code)}")


def swap_partition(staged: str, final: str, run_id: str) -> None:
    """Make the staged folder the partition `final` (idempotent: a done swap is skipped)."""
    if _swapped_by(final) == run_id:
        _delete_if_exists(staged)  # done before; the old files may still be there
        return
    if "://" in final:
        _swap_remote(staged, final, run_id)
    elif not os.path.exists(final):
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.rename(staged, final)
    else:
        try:
            exchange_folders(staged, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EINVAL):
                raise
            _swap_remote(staged, final, run_id)  # a file system without RENAME_EXCHANGE
    _delete_if_exists(staged)


def _swap_remote(staged: str, final: str, run_id: str) -> None:
    """Delete the partition's files not of this run, move the staged ones in, marker last.

    Safe to repeat after a crash: the run's files carry its id in their names.
    """

    def files(folder: str) -> list[str]:
        return [m.path for m in FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list]

    old = [p for p in files(final) if run_id not in os.path.basename(p)]
    if old:
        FileSystems.delete(old)
    new = sorted(files(staged), key=lambda p: os.path.basename(p) == MARKER)
    for path in new:
        FileSystems.rename([path], [FileSystems.join(final, os.path.basename(path))])


def _delete_if_exists(path: str) -> None:
    if FileSystems.exists(path):
        FileSystems.delete([path])
