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
import pyarrow.compute as pc
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


# Per table: the columns holding user ids and those holding anonymous ids.
ID_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "users": (("userId",), ()),
    "anonymous": (("userId",), ("anonymousId",)),
    "aliases": (("previousId", "userId"), ()),
    "conflicts": (("userId",), ("anonymousId",)),
}


def _naming(table: pa.Table, name: str, users: pa.Array, anonymous: pa.Array) -> pa.Array:
    """True for the rows of identity table `name` that name one of the ids."""
    if name == "kpid_map":
        is_user = pc.and_(pc.equal(table["kind"], "user"), pc.is_in(table["id"], users))
        is_anon = pc.and_(pc.equal(table["kind"], "anonymous"), pc.is_in(table["id"], anonymous))
        return pc.or_(is_user, is_anon)
    user_columns, anonymous_columns = ID_COLUMNS[name]
    hits = [pc.is_in(table[c], users) for c in user_columns]
    hits += [pc.is_in(table[c], anonymous) for c in anonymous_columns]
    mask = hits[0]
    for hit in hits[1:]:
        mask = pc.or_(mask, hit)
    return pc.fill_null(mask, False)


def stage_identity_without(
    txn: IdentityTransaction, user_ids: set[str], anonymous_ids: set[str]
) -> int:
    """Stage in `txn` the identity set without every row that names one of the ids (as a
    user id or an anonymous id); returns the rows removed (0: nothing staged). A lake
    without an identity set has nothing to remove."""
    if is_remote(txn.lake):
        raise ValueError(f"writing identity needs a local lake, not {txn.lake}")
    try:
        tables = read_identity(txn.lake)
    except FileNotFoundError:
        return 0
    users = pa.array(sorted(user_ids), pa.string())
    anonymous = pa.array(sorted(anonymous_ids), pa.string())
    kept = {}
    removed = 0
    for name, table in tables.items():
        mask = _naming(table, name, users, anonymous)
        kept[name] = table.filter(pc.invert(mask))
        removed += table.num_rows - kept[name].num_rows
    if not removed:
        return 0
    staging = txn.replace(os.path.join(txn.lake, IDENTITY))
    os.makedirs(staging, exist_ok=True)
    generation = uuid.uuid4().hex.encode()
    for name, table in kept.items():
        metadata = {**(table.schema.metadata or {}), GENERATION: generation}
        path = os.path.join(staging, f"{name}.parquet")
        pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")
    txn.record("identity", {"generation": generation.decode(), "rows_removed": removed})
    return removed
