"""`LAKE/identity/`: the identity tables, replaced as one set.

Layout: `LAKE/identity/{users,anonymous,aliases,conflicts,kpid_map}.parquet`, every
file stamped with the same `generation` (Parquet key-value metadata).

Writing a new set (`write_identity`, local lakes only) streams every table from DuckDB
(COPY, bounded memory) into the staged folder of a lake transaction that replaces
`identity/` whole (`io.lake_transaction`: one folder exchange at commit), so a reader
sees the old set or the new one; a crash before the commit leaves the old set, one after
it is finished by the next writer's recovery. `read_identity` still checks that every
table it read has one generation (a reader that opened some files before an exchange and
some after), retrying otherwise.

Reading works on local paths and gs:// URLs (Beam FileSystems); writing needs a local
lake (DuckDB COPY writes local files, and a folder exchange is only atomic there).
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from eventpipe.core.duck import quote_str
from eventpipe.identity.graph import KPID_MAP_SCHEMA, TABLES, IdentityResult
from eventpipe.io.lake import lake_path
from eventpipe.schemas.lake_layout import is_remote

log = logging.getLogger(__name__)

IDENTITY = "identity"
GENERATION = b"generation"
READ_ATTEMPTS = 5


class IdentityTransaction(Protocol):
    """What `write_identity` needs of a lake transaction (`io.lake_transaction`)."""

    lake: str

    def replace(self, folder: str, old: list[str] | None = None) -> str: ...

    def record(self, key: str, value: object) -> None: ...


def write_identity(txn: IdentityTransaction, result: IdentityResult) -> str:
    """Stage `result`'s tables in `txn` as the new `LAKE/identity/` (visible once `txn`
    commits); returns their generation."""
    if is_remote(txn.lake):
        raise ValueError(f"writing identity needs a local lake, not {txn.lake}")
    staging = txn.replace(os.path.join(txn.lake, IDENTITY))
    os.makedirs(staging, exist_ok=True)
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
    txn.record("identity", {"generation": generation, "counts": result.counts})
    log.info("identity %s staged in %s: %s", generation, staging, result.counts)
    return generation


def _read(lake: str, name: str) -> pa.Table:
    path = lake_path(lake, IDENTITY, f"{name}.parquet")
    try:
        handle = FileSystems.open(path, compression_type="uncompressed")
    except OSError as error:
        raise FileNotFoundError(
            f"no identity table {name} in {lake_path(lake, IDENTITY)}"
        ) from error
    with handle:
        return pq.read_table(handle)


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
