"""`LAKE/identity/`: the identity tables, replaced as one set.

Layout: `LAKE/identity/{users,anonymous,aliases,conflicts,kpid_map}.parquet`, every
file stamped with the same `generation` (Parquet key-value metadata).

Writing a new set (`write_identity`, local lakes only):
1. finish or discard what an interrupted earlier run left (`recover_identity`);
2. stream every table from DuckDB into `LAKE/identity/_next/` (COPY, bounded memory);
3. write the journal `LAKE/identity/_SWAP.json` (atomically: temp file + rename): from
   here on the new set is committed;
4. rename each `_next/<table>.parquet` over `<table>.parquet` (atomic per file);
5. delete `_next/` and the journal.

A crash before step 3 leaves the old set in place (the next run drops `_next/`); a
crash after it is finished by the next `write_identity` or `recover_identity`.
Readers never see a mix: `read_identity` takes `_next/<table>` while a journal exists
(the new version of a file not yet moved) and checks that every table it read has one
generation, retrying otherwise. The only window is for readers that bypass this
module and open several files by hand during step 4 (microseconds: five renames); a
single file (what the streaming job reads: `kpid_map.parquet`) is always whole.

Reading works on local paths and gs:// URLs (Beam FileSystems); writing needs a local
lake (DuckDB COPY writes local files, and a directory rename is only atomic there).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from eventpipe.identity.graph import KPID_MAP_SCHEMA, TABLES, IdentityResult
from eventpipe.io.lake import fsync_folder, lake_path
from eventpipe.transforms.duck import quote_str

log = logging.getLogger(__name__)

IDENTITY = "identity"
NEXT = "_next"
JOURNAL = "_SWAP.json"
GENERATION = b"generation"
READ_ATTEMPTS = 5


def _local_root(lake: str) -> str:
    if "://" in lake:
        raise ValueError(f"writing identity needs a local lake, not {lake}")
    return os.path.join(lake, IDENTITY)


def stage_identity(lake: str, result: IdentityResult) -> str:
    """Steps 1-2: write every table into `_next/`; return the new generation."""
    root = _local_root(lake)
    recover_identity(lake)
    staging = os.path.join(root, NEXT)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    generation = uuid.uuid4().hex
    for name in TABLES:
        path = os.path.join(staging, f"{name}.parquet")
        try:
            result.con.execute(
                f"COPY ({result.sql(name)}) TO {quote_str(path)} (FORMAT parquet, "
                f"COMPRESSION zstd, KV_METADATA {{generation: {quote_str(generation)}}})"
            )
        except duckdb.Error as error:
            raise RuntimeError(f"writing identity table {name} to {path}: {error}") from error
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fsync_folder(staging)
    return generation


def commit_identity(lake: str, generation: str) -> None:
    """Step 3: the journal that makes the staged set the current one."""
    root = _local_root(lake)
    journal = os.path.join(root, JOURNAL)
    with open(journal + ".tmp", "w") as handle:
        json.dump({"generation": generation, "tables": list(TABLES)}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(journal + ".tmp", journal)
    fsync_folder(root)


def recover_identity(lake: str) -> str:
    """Finish a committed swap (steps 4-5) or drop an uncommitted `_next/`; say which."""
    root = _local_root(lake)
    journal = os.path.join(root, JOURNAL)
    staging = os.path.join(root, NEXT)
    if os.path.exists(journal):
        with open(journal) as handle:
            tables = json.load(handle)["tables"]
        for name in tables:
            staged = os.path.join(staging, f"{name}.parquet")
            if os.path.exists(staged):
                os.replace(staged, os.path.join(root, f"{name}.parquet"))
        fsync_folder(root)
        shutil.rmtree(staging, ignore_errors=True)
        os.remove(journal)
        return "finished"
    if os.path.exists(staging):
        shutil.rmtree(staging)
        log.warning("dropped an uncommitted identity build in %s", staging)
        return "discarded"
    return "clean"


def write_identity(lake: str, result: IdentityResult) -> str:
    """Replace `LAKE/identity/` with `result`'s tables as one set; return the generation."""
    generation = stage_identity(lake, result)
    commit_identity(lake, generation)
    recover_identity(lake)
    log.info("identity %s written to %s: %s", generation, _local_root(lake), result.counts)
    return generation


def _current_path(lake: str, name: str) -> list[str]:
    """Where table `name` of the current set is, best candidate first."""
    root = lake_path(lake, IDENTITY)
    final = lake_path(root, f"{name}.parquet")
    if FileSystems.exists(lake_path(root, JOURNAL)):
        return [lake_path(root, NEXT, f"{name}.parquet"), final]
    return [final]


def _read(lake: str, name: str) -> pa.Table:
    for path in _current_path(lake, name):
        try:
            handle = FileSystems.open(path, compression_type="uncompressed")
        except OSError:  # renamed between the check and the open: try the next place
            continue
        with handle:
            return pq.read_table(handle)
    raise FileNotFoundError(f"no identity table {name} in {lake_path(lake, IDENTITY)}")


def read_identity(lake: str, names: tuple[str, ...] = TABLES) -> dict[str, pa.Table]:
    """Tables of the current identity set, all of one generation."""
    for _ in range(READ_ATTEMPTS):
        tables = {name: _read(lake, name) for name in names}
        generations = {(t.schema.metadata or {}).get(GENERATION) for t in tables.values()}
        if len(generations) == 1:
            return tables
    raise RuntimeError(f"identity tables kept changing while read: {generations}")


def read_kpid_map(lake: str) -> pa.Table:
    """The current kpid map: (kind 'user'|'anonymous', id, kpid), one row per id."""
    return read_identity(lake, ("kpid_map",))["kpid_map"].cast(KPID_MAP_SCHEMA)


def kpid_map_version(lake: str) -> tuple:
    """(size, mtime) of the kpid map file: changes when `eventpipe identity` replaces it."""
    found = FileSystems.match([lake_path(lake, IDENTITY, "kpid_map.parquet")])[0]
    return tuple((m.size_in_bytes, m.last_updated_in_seconds) for m in found.metadata_list)


def current_kpid_map(lake: str) -> pa.Table:
    """The current kpid map, or an empty one when `eventpipe identity` has not run yet."""
    try:
        return read_kpid_map(lake)
    except FileNotFoundError:
        return KPID_MAP_SCHEMA.empty_table()
