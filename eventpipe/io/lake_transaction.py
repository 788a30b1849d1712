"""The one lake transaction: every writer stages its files, then commits them at once.

A transaction T (import, reprocess, compaction, identity, a stream window):

- begin: `_staging/T/_RUNNING.json` names its owner (host, pid, job);
- stage: files are written under `_staging/T/` (`staged_path`), invisible to readers;
- add a staged file, replace a folder whole (a date partition, `identity/`), delete a
  file; `record` metadata (the run summary, the landing segments imported...);
- commit: `_staging/T/_COMMIT.json` is written aside, fsynced and renamed into place
  (then the folder fsynced): from then on T happens. Then it is applied: each replaced
  folder is exchanged with its staged folder in one `renameat2(RENAME_EXCHANGE)` (local
  lakes: a reader sees the old folder or the new one), then the added files are renamed in,
  raw/ files first (a visible event always has its archive), then the deletions; a replaced
  folder carries the transaction's `_RUN` marker, so a replace done is never redone. Last, the
  record moves to `_txn/T.json` when it carries metadata, and `_staging/T/` is removed.
- recover (`recover_transactions`, run by every writer first, holding the writer lock):
  a transaction of a dead process of this host is applied again when committed (every
  step is idempotent) and, when it carries a run summary, recorded in `_runs/T.json` as
  recovered; one that never committed is removed (nothing of it was visible).

On gs:// (no folder exchange) a replace renames the new files in, then deletes the old
ones: for an instant a reader may see both. The lake format is plain hive-partitioned
Parquet throughout: `read_parquet('lake/events/*/*.parquet')` sees exactly the committed
rows outside the apply step of a commit, and after recovery.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket

from apache_beam.io.filesystems import FileSystems

from eventpipe.core.files import fsync_folder
from eventpipe.io.lake import (
    EVENTS,
    RAW,
    STAGING,
    lake_path,
    make_parent,
    pause_point,
    write_run_summary,
)
from eventpipe.schemas.lake_layout import is_remote
from eventpipe.serving.count_summary import summary_path, write_summary

OWNER = "_RUNNING.json"
MARKER = "_RUN"  # in a replaced folder: the id of the transaction that replaced it
COMMIT = "_COMMIT.json"
LOG = "_txn"  # committed records that carry metadata, one `<id>.json` each
SUMMARY = "summary"  # the metadata key of a run's counts (recorded in _runs/ if recovered)
LEGACY_MARKERS = ((STAGING, "*", "_COMMITTING"), ("identity", "_SWAP.json"))
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class LakeBusy(Exception):
    """Another writer holds the lake, or may (the message names it and what to do)."""


class LakeTransaction:
    """One transaction of `lake`, named `txn_id` (unique; it names the staging folder).

    Picklable (plain fields), so a Beam DoFn can build and commit one.
    """

    def __init__(self, lake: str, txn_id: str) -> None:
        self.lake = lake
        self.id = txn_id
        self.staging = lake_path(lake, STAGING, txn_id)
        self.adds: list[tuple[str, str]] = []
        self.replaces: list[tuple[str, str, list[str] | None]] = []
        self.deletes: list[str] = []
        self.metadata: dict = {}

    @classmethod
    def begin(cls, lake: str, txn_id: str, job: str = "") -> LakeTransaction:
        """Start a transaction: record its owner (this process), so that recovery leaves it
        alone while the process lives and removes it once the process is gone."""
        txn = cls(lake, txn_id)
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "job": job}
        _write_json(lake_path(txn.staging, OWNER), owner)
        return txn

    def staged_path(self, *parts: str) -> str:
        """A path inside the transaction's staging folder."""
        return lake_path(self.staging, *parts)

    def add(self, staged: str, final: str) -> None:
        """At commit, the staged file becomes `final` (replacing a file of that name)."""
        self.adds.append((staged, final))

    def replace(self, folder: str, old: list[str] | None = None) -> str:
        """At commit, `folder` (inside the lake) holds exactly what its staged folder holds;
        returns that staged folder. `old`: the files replaced (default: the folder's Parquet
        files at commit); on gs:// only these are deleted."""
        relative = folder[len(self.lake) :].strip("/")
        staged = self.staged_path(*relative.split("/"))
        self.replaces.append((staged, folder, None if old is None else list(old)))
        return staged

    def replace_partition(self, table: str, partition: str, old: list[str] | None = None) -> str:
        """`replace` of the partition folder `table/partition` (e.g. events/date=D)."""
        return self.replace(lake_path(self.lake, table, partition), old)

    def delete(self, path: str) -> None:
        """At commit, the lake file `path` is deleted."""
        self.deletes.append(path)

    def record(self, key: str, value: object) -> None:
        """Attach metadata (JSON) to the commit record; read it back with `read_commit`."""
        self.metadata[key] = value

    def commit(self) -> dict:
        """Write the commit record durably, then apply it. Returns the record."""
        pause_point("before-commit")
        self._stage_count_summaries()
        replaces = []
        for staged, final, old in self.replaces:
            with FileSystems.create(lake_path(staged, MARKER)) as handle:
                handle.write(self.id.encode())
            new = [os.path.basename(p) for p in _files(staged)]
            old = _files(final) if old is None else old
            replaces.append({"staged": staged, "final": final, "new": new, "old": old})
        record = {
            "id": self.id,
            "add": sorted(self.adds, key=lambda pair: _add_order(pair[1])),
            "replace": replaces,
            "delete": list(self.deletes),
            "metadata": self.metadata,
        }
        _write_json(lake_path(self.staging, COMMIT), record, durable=True)
        apply_commit(self.lake, record)
        return record

    def _stage_count_summaries(self) -> None:
        """Give every event file this commit makes visible its count summary, staged and
        committed with it (eventpipe.serving.count_summary), so that every writer keeps
        the summaries true; a deleted event file's summary goes with it. Local lakes only
        (the read API reads local lakes; a file without a summary is scanned)."""
        if is_remote(self.lake):
            return
        events = lake_path(self.lake, EVENTS) + os.sep
        for staged, final in list(self.adds):
            summary = None
            if final.startswith(events) and final.endswith(".parquet"):
                summary = write_summary(staged)
            if summary is not None:
                self.adds.append((summary, summary_path(final)))
        for staged, final, _ in self.replaces:
            if (final + os.sep).startswith(events):
                for path in _files(staged):
                    write_summary(path)
        self.deletes += [
            summary_path(p) for p in self.deletes if p.startswith(events) and p.endswith(".parquet")
        ]


def _add_order(final: str) -> tuple[bool, str]:
    """Raw files first: a visible event always has its archive (and events before failed)."""
    return (f"/{RAW}/" not in final, final)


def _files(folder: str) -> list[str]:
    """The Parquet files directly in `folder` (none if it does not exist)."""
    pattern = lake_path(folder, "*.parquet")
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _write_json(path: str, body: dict, durable: bool = False) -> None:
    """Write a JSON file whole: aside, then renamed (fsynced first, with `durable`)."""
    data = json.dumps(body, default=str).encode()
    if is_remote(path):
        with FileSystems.create(path + ".pending") as handle:
            handle.write(data)
        FileSystems.rename([path + ".pending"], [path])
        return
    make_parent(path)
    with open(path + ".pending", "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(path + ".pending", path)
    if durable:
        fsync_folder(os.path.dirname(path))


def _read_json(path: str) -> dict:
    with FileSystems.open(path) as handle:
        return json.loads(handle.read())


def _remove(path: str) -> None:
    if FileSystems.exists(path):
        FileSystems.delete([path])


def exchange_folders(a: str, b: str) -> None:
    """Exchange two local folders in one system call (OSError ENOSYS/EINVAL where the file
    system cannot)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"cannot exchange {a} and {b}: {os.strerror(code)}")


def _replaced_by(folder: str) -> str | None:
    """The transaction whose replacement `folder` holds (its MARKER file), if any."""
    path = lake_path(folder, MARKER)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        return handle.read().decode()


def _replace_folder(txn_id: str, staged: str, final: str, new: list[str], old: list[str]) -> None:
    """Make `final` hold the `new` files of `staged` (and its MARKER) instead of its `old`
    ones. Idempotent: a folder that holds the transaction's MARKER is done."""
    if _replaced_by(final) == txn_id:
        _remove(staged)  # done before (an exchange leaves the old files in `staged`)
        return
    present = {os.path.basename(p) for p in _files(final)}
    old_names = {os.path.basename(p) for p in old}
    if not is_remote(final):
        if not os.path.exists(final):
            make_parent(final)
            os.rename(staged, final)
            return
        if present == old_names and os.path.isdir(staged):
            try:
                exchange_folders(staged, final)
            except OSError as exc:
                if exc.errno not in (errno.ENOSYS, errno.EINVAL):
                    raise
            else:
                _remove(staged)
                return
        os.makedirs(final, exist_ok=True)
    # No exchange (gs://): the new files are renamed in, the old ones deleted, marker last.
    pending = [n for n in [*new, MARKER] if FileSystems.exists(lake_path(staged, n))]
    for name in pending[:-1]:
        FileSystems.rename([lake_path(staged, name)], [lake_path(final, name)])
    stale = [lake_path(final, n) for n in sorted((old_names - set(new)) & present)]
    if stale:
        FileSystems.delete(stale)
    if pending:
        FileSystems.rename([lake_path(staged, pending[-1])], [lake_path(final, pending[-1])])
    _remove(staged)


def apply_commit(lake: str, record: dict) -> None:
    """Do what a commit record says (again, after a crash: every step is idempotent), then
    keep the record in `_txn/` if it carries metadata and remove the staging folder."""
    for number, step in enumerate(record["replace"]):
        _replace_folder(record["id"], step["staged"], step["final"], step["new"], step["old"])
        if number == 0:
            pause_point("commit-swapped-first")
    pending = [(s, d) for s, d in record["add"] if FileSystems.exists(s)]
    for folder in sorted({os.path.dirname(d) for _, d in pending}):
        if not is_remote(folder):
            os.makedirs(folder, exist_ok=True)
    if pending:
        FileSystems.rename([pending[0][0]], [pending[0][1]])
        pause_point("commit-renamed-first")
        if pending[1:]:
            FileSystems.rename([s for s, _ in pending[1:]], [d for _, d in pending[1:]])
    stale = [p for p in record["delete"] if FileSystems.exists(p)]
    if stale:
        FileSystems.delete(stale)
    if record["metadata"]:
        _write_json(lake_path(lake, LOG, f"{record['id']}.json"), record)
    _remove(lake_path(lake, STAGING, record["id"]))


def read_commit(lake: str, txn_id: str) -> dict | None:
    """The metadata of a committed transaction (None: none recorded, or not committed)."""
    path = lake_path(lake, LOG, f"{txn_id}.json")
    return _read_json(path)["metadata"] if FileSystems.exists(path) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_is_gone(owner: dict) -> bool:
    """Whether the process an owner file (`_RUNNING.json`) names is of this host and dead."""
    return owner.get("host") == socket.gethostname() and not _pid_alive(int(owner.get("pid", 0)))


def _refuse_legacy(lake: str) -> None:
    """A lake left mid-commit by an eventpipe before the lake transaction: refuse, say how."""
    for parts in LEGACY_MARKERS:
        found = FileSystems.match([lake_path(lake, *parts)])[0].metadata_list
        if found:
            raise LakeBusy(
                f"{found[0].path}: the lake was left mid-commit by an older eventpipe (before "
                "the lake transaction); finish that commit with the older version (run any "
                "writer job once, e.g. `eventpipe compact --no-index`), then run this one"
            )


def recover_transactions(lake: str, by_run: str = "", dry_run: bool = False) -> list[str]:
    """Roll forward the committed transactions of dead processes, remove the uncommitted
    ones; returns what was done (with `dry_run`, what would be done, and nothing is).

    Transactions of live processes of this host are left alone (a stream staging its next
    window), and uncommitted ones of other hosts (they may be running); a committed one of
    another host may be applying right now: LakeBusy. Call it holding the writer lock.
    """
    _refuse_legacy(lake)
    pattern = lake_path(lake, STAGING, "*", OWNER)
    done = []
    for meta in sorted(FileSystems.match([pattern])[0].metadata_list, key=lambda m: m.path):
        staging = FileSystems.split(meta.path)[0]
        txn_id = FileSystems.split(staging)[1]
        owner = _read_json(meta.path)
        committed = FileSystems.exists(lake_path(staging, COMMIT))
        if owner.get("host") != socket.gethostname():  # not owner_is_gone: it may be running
            if committed:
                raise LakeBusy(
                    f"run {txn_id} of host {owner.get('host')} (pid {owner.get('pid')}) has "
                    "committed and may be applying its commit now; if it died, run any writer "
                    f"job on that host to finish it"
                )
            continue
        if _pid_alive(int(owner.get("pid", 0))):
            continue
        if not committed:
            if not dry_run:
                _remove(staging)
            done.append(f"removed the staged files of abandoned run {txn_id}")
            continue
        if not dry_run:
            record = _read_json(lake_path(staging, COMMIT))
            apply_commit(lake, record)
            if SUMMARY in record["metadata"]:
                ledger = {"run_id": txn_id, "job": owner.get("job", ""), "status": "recovered"}
                ledger["recovered_by"] = by_run
                write_run_summary(lake, txn_id, {**ledger, **record["metadata"][SUMMARY]})
        done.append(f"completed the commit of interrupted run {txn_id}")
    return [f"would have {note}" for note in done] if dry_run else done
