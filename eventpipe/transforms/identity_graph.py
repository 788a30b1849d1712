"""The identity graph of a whole lake, built in DuckDB SQL: `identity_rules`, at scale.

`identity_rules` (pure Python) is the specification; this module gives exactly the same
profiles, kpids and conflicts, set-at-a-time in SQL, so the memory it needs is bounded
by DuckDB's `memory_limit` (larger inputs spill to `temp_directory`), not by the number
of ids. Steps, each one SQL statement over the previous tables:

1. links: per event, `links_of` (placeholders by `is_placeholder`, as a SQL macro built
   from the same PLACEHOLDERS), grouped to one row per (userId, anonymousId,
   previousId) with its earliest timestamp. One scan of the five columns.
2. users: every user id (userId, and an alias's previousId) with its first_seen.
3. alias components: only ids named by an alias take part (every other user id is a
   profile of its own). Integer labels; each round a node takes the smallest label of
   itself and its neighbours, a label's owner takes the smallest label proposed by the
   nodes pointing at it, and every node jumps to its label's label (pointer jumping).
   Python loops until no label changes: O(log n) rounds on chains, measured in
   benchmarks/bench_identity.py.
4. anchor = the component's smallest (first_seen, userId); kpid = uuid5(KPID_NAMESPACE,
   anchor), vectorised: sha1 over the namespace bytes and the UTF-8 id, with the
   version and variant bits set as RFC 4122 says (equal to Python's `uuid.uuid5`).
5. anonymous ids: the first user (earliest link, ties by the smallest userId) gives
   the kpid; each link to a user of another profile is one conflict, at its earliest
   timestamp.

Output tables (Arrow, or Parquet through `eventpipe.identity.store`): users (userId, kpid,
first_seen), anonymous (anonymousId, userId, kpid, first_seen: the first user and the
earliest link), aliases (previousId, userId, first_seen), conflicts (anonymousId,
userId: the other user, first_seen, kpid_kept) and kpid_map (kind 'user'|'anonymous',
id, kpid): one row per id with a profile, the lookup every other job uses.

Inputs: a local path or glob of event Parquet files (hive partitions allowed; only the
five columns are read), or an Arrow table with those columns. DuckDB reads local
files; a gs:// lake needs DuckDB's httpfs extension, which this project does not set
up: identity is built from a local lake (or a local copy of its events).
"""

from __future__ import annotations

import functools
import logging
import sys
import tempfile
import time
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from eventpipe.transforms.duck import connect, quote_str
from eventpipe.transforms.identity_rules import KPID_NAMESPACE, PLACEHOLDERS
from eventpipe.transforms.stitch import KpidStitcher

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("type", "anonymousId", "userId", "previousId", "timestamp")
TABLES = ("users", "anonymous", "aliases", "conflicts", "kpid_map")
MAX_ROUNDS = 200  # pointer jumping needs ~log2(longest chain) rounds; 200 is far beyond

KPID_MAP_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("kpid", pa.string(), nullable=False),
    ]
)


def identity_connection(
    memory_limit: str = "1GB", temp_directory: str | None = None, threads: int = 2
) -> duckdb.DuckDBPyConnection:
    """A DuckDB session for the build: bounded by `memory_limit`, spilling to disk beyond."""
    con = connect(threads=threads, memory_limit=memory_limit)
    spill = temp_directory or tempfile.mkdtemp(prefix="eventpipe-identity-")
    con.execute(f"SET temp_directory = {quote_str(spill)}")
    con.execute("SET preserve_insertion_order = false")  # lets big sorts and joins spill
    return con


@functools.cache
def _python_whitespace() -> str:
    """Every character `str.strip()` removes (Unicode whitespace)."""
    return "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


@functools.cache
def _casefold_to_ascii() -> dict[str, str]:
    """Non-ASCII characters that `str.casefold()` turns into ASCII text (e.g. '\u017f' -> 's')."""
    found = {}
    for code in range(128, sys.maxunicode + 1):
        folded = chr(code).casefold()
        if folded.isascii():
            found[chr(code)] = folded
    return found


def placeholder_macros() -> list[str]:
    """SQL macros: ep_is_placeholder(x) is `identity_rules.is_placeholder(x)`.

    strip() is `trim` over Python's whitespace set; casefold() is `lower` on ASCII text;
    a non-ASCII id is a placeholder only if the few characters that casefold to ASCII
    (listed from Python) make it ASCII and then a placeholder. Fast path (nearly every
    real id): nothing to strip (printable ASCII at both ends) and longer than every
    placeholder (casefold never shortens text) means no placeholder.
    """
    placeholders = ", ".join(quote_str(p) for p in sorted(PLACEHOLDERS))
    longest = max(len(p) for p in PLACEHOLDERS)
    folded = "s"
    for char, ascii_text in sorted(_casefold_to_ascii().items()):
        folded = f"replace({folded}, {quote_str(char)}, {quote_str(ascii_text)})"
    return [
        f"CREATE OR REPLACE TEMP MACRO ep_strip(x) AS trim(x, {quote_str(_python_whitespace())})",
        f"CREATE OR REPLACE TEMP MACRO ep_fold(s) AS {folded}",
        f"CREATE OR REPLACE TEMP MACRO ep_placeholder_text(s) AS "
        f"(s = '' OR (strlen(s) = length(s) AND lower(s) IN ({placeholders})))",
        "CREATE OR REPLACE TEMP MACRO ep_is_placeholder(x) AS CASE "
        "WHEN x IS NULL THEN true "
        "WHEN x[1] BETWEEN '!' AND '~' AND x[-1] BETWEEN '!' AND '~' THEN "
        f"  length(x) <= {longest} AND CASE WHEN strlen(x) = length(x) "
        f"  THEN lower(x) IN ({placeholders}) ELSE ep_placeholder_text(ep_fold(x)) END "
        "ELSE ep_placeholder_text(ep_fold(ep_strip(x))) END",
    ]


def uuid5_sql(hex_digest: str) -> str:
    """SQL: the uuid5 text of a 40-hex-digit sha1 digest (version 5, RFC 4122 variant)."""
    h = hex_digest
    variant = f"substr('89ab', (position(substr({h}, 17, 1) IN '0123456789abcdef') - 1) % 4 + 1, 1)"
    return (
        f"substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-5' || substr({h}, 14, 3) || '-' "
        f"|| {variant} || substr({h}, 18, 3) || '-' || substr({h}, 21, 12)"
    )


def kpid_digest_sql(name: str) -> str:
    """SQL: sha1 hex digest of the kpid namespace bytes followed by the UTF-8 `name`."""
    return f"sha1(unhex('{KPID_NAMESPACE.hex}') || encode({name}))"


def _source_sql(con: duckdb.DuckDBPyConnection, events: str | pa.Table) -> str:
    columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    if isinstance(events, pa.Table):
        con.register("identity_source", events.select(list(EVENT_COLUMNS)))
        return f"SELECT {columns} FROM identity_source"
    return (
        f"SELECT {columns} FROM read_parquet({quote_str(events)}, "
        "hive_partitioning = true, union_by_name = true)"
    )


def _links_sql(source: str) -> str:
    """One row per distinct (user, anonymous id, previous id) evidence, earliest first."""
    return f"""
        CREATE OR REPLACE TEMP TABLE ep_links AS
        SELECT user_id, anonymous_id, previous_id, min(ts) AS ts
        FROM (
            SELECT "userId" AS user_id,
                   CASE WHEN NOT ep_is_placeholder("anonymousId") THEN "anonymousId" END
                       AS anonymous_id,
                   CASE WHEN "type" = 'alias' AND NOT ep_is_placeholder("previousId")
                        THEN "previousId" END AS previous_id,
                   "timestamp" AS ts
            FROM ({source})
            WHERE NOT ep_is_placeholder("userId")
        )
        GROUP BY ALL
    """


_USERS_AND_ALIASES = [
    """CREATE OR REPLACE TEMP TABLE ep_aliases AS
       SELECT previous_id AS "previousId", user_id AS "userId", min(ts) AS first_seen
       FROM ep_links WHERE previous_id IS NOT NULL GROUP BY ALL""",
    """CREATE OR REPLACE TEMP TABLE ep_user_seen AS
       SELECT id, min(ts) AS first_seen FROM (
           SELECT user_id AS id, ts FROM ep_links
           UNION ALL SELECT previous_id, ts FROM ep_links WHERE previous_id IS NOT NULL
       ) GROUP BY id""",
    """CREATE OR REPLACE TEMP TABLE ep_identified AS
       SELECT anonymous_id, user_id, min(ts) AS ts
       FROM ep_links WHERE anonymous_id IS NOT NULL GROUP BY ALL""",
    """CREATE OR REPLACE TEMP TABLE ep_nodes AS
       SELECT id, row_number() OVER () AS node FROM (
           SELECT "previousId" AS id FROM ep_aliases UNION SELECT "userId" FROM ep_aliases
       )""",
    """CREATE OR REPLACE TEMP TABLE ep_edges AS
       WITH pairs AS (
           SELECT p.node AS a, u.node AS b FROM ep_aliases
           JOIN ep_nodes p ON p.id = ep_aliases."previousId"
           JOIN ep_nodes u ON u.id = ep_aliases."userId"
           WHERE p.node <> u.node
       )
       SELECT a AS src, b AS dst FROM pairs UNION SELECT b, a FROM pairs""",
    "CREATE OR REPLACE TEMP TABLE ep_labels AS SELECT node, node AS label FROM ep_nodes",
]

# One round of label propagation: neighbour minimum, hooking, pointer jumping.
_ROUND = [
    """CREATE OR REPLACE TEMP TABLE ep_proposal AS
       SELECT l.node, l.label, least(l.label, min(n.label)) AS m
       FROM ep_labels l
       LEFT JOIN ep_edges e ON e.src = l.node
       LEFT JOIN ep_labels n ON n.node = e.dst
       GROUP BY l.node, l.label""",
    """CREATE OR REPLACE TEMP TABLE ep_hooked AS
       SELECT node, min(m) AS label FROM (
           SELECT node, m FROM ep_proposal UNION ALL SELECT label, m FROM ep_proposal
       ) GROUP BY node""",
    """CREATE OR REPLACE TEMP TABLE ep_next_labels AS
       SELECT a.node, b.label FROM ep_hooked a JOIN ep_hooked b ON b.node = a.label""",
]
_CHANGED = """SELECT count(*) FROM ep_next_labels n JOIN ep_labels l USING (node)
              WHERE n.label <> l.label"""


def _components(con: duckdb.DuckDBPyConnection) -> int:
    """Label every alias node with its component's smallest node; the rounds it took."""
    for rounds in range(1, MAX_ROUNDS + 1):
        for statement in _ROUND:
            con.execute(statement)
        changed = con.execute(_CHANGED).fetchall()[0][0]
        con.execute("DROP TABLE ep_labels")
        con.execute("ALTER TABLE ep_next_labels RENAME TO ep_labels")
        if not changed:
            return rounds
    raise RuntimeError(f"alias components did not converge in {MAX_ROUNDS} rounds")


_PROFILES = [
    """CREATE OR REPLACE TEMP TABLE ep_anchors AS
       WITH members AS (
           SELECT n.id, l.label, s.first_seen FROM ep_nodes n
           JOIN ep_labels l USING (node) JOIN ep_user_seen s ON s.id = n.id
       ), anchors AS (
           SELECT label, arg_min(id, (first_seen, id)) AS anchor FROM members GROUP BY label
       )
       SELECT id, anchor FROM members JOIN anchors USING (label)""",
    f"""CREATE OR REPLACE TEMP TABLE ep_users AS
        SELECT id AS "userId", anchor, first_seen, {uuid5_sql("digest")} AS kpid FROM (
            SELECT s.id, s.first_seen, coalesce(a.anchor, s.id) AS anchor,
                   {kpid_digest_sql("coalesce(a.anchor, s.id)")} AS digest
            FROM ep_user_seen s LEFT JOIN ep_anchors a USING (id)
        )""",
    """CREATE OR REPLACE TEMP TABLE ep_first_user AS
       SELECT anonymous_id, arg_min(user_id, (ts, user_id)) AS user_id, min(ts) AS first_seen
       FROM ep_identified GROUP BY anonymous_id""",
    """CREATE OR REPLACE TEMP TABLE ep_anonymous AS
       SELECT f.anonymous_id AS "anonymousId", f.user_id AS "userId", u.kpid, u.anchor,
              f.first_seen
       FROM ep_first_user f JOIN ep_users u ON u."userId" = f.user_id""",
    """CREATE OR REPLACE TEMP TABLE ep_conflicts AS
       SELECT i.anonymous_id AS "anonymousId", i.user_id AS "userId", i.ts AS first_seen,
              a.kpid AS kpid_kept
       FROM ep_identified i
       JOIN ep_anonymous a ON a."anonymousId" = i.anonymous_id
       JOIN ep_users u ON u."userId" = i.user_id
       WHERE u.anchor <> a.anchor""",
    """CREATE OR REPLACE TEMP TABLE ep_kpid_map AS
       SELECT 'user' AS kind, "userId" AS id, kpid FROM ep_users
       UNION ALL SELECT 'anonymous', "anonymousId", kpid FROM ep_anonymous""",
]

_OUTPUT_SQL = {
    "users": 'SELECT "userId", kpid, first_seen FROM ep_users ORDER BY "userId"',
    "anonymous": """SELECT "anonymousId", "userId", kpid, first_seen FROM ep_anonymous
                    ORDER BY "anonymousId\"""",
    "aliases": 'SELECT "previousId", "userId", first_seen FROM ep_aliases ORDER BY ALL',
    "conflicts": 'SELECT * FROM ep_conflicts ORDER BY "anonymousId", "userId"',
    "kpid_map": "SELECT kind, id, kpid FROM ep_kpid_map ORDER BY kind, id",
}


@dataclass(frozen=True)
class IdentityResult:
    """The built graph, held in DuckDB temp tables of `con` (bounded memory, spillable).

    `table(name)` materialises one output as Arrow; `sql(name)` is its query, which
    `eventpipe.identity.store.write_identity` streams into Parquet with COPY.
    """

    con: duckdb.DuckDBPyConnection
    counts: dict[str, int]
    rounds: int  # label-propagation rounds the alias components took
    seconds: dict[str, float]  # wall time of each build step

    def sql(self, name: str) -> str:
        return _OUTPUT_SQL[name]

    def table(self, name: str) -> pa.Table:
        table = self.con.sql(_OUTPUT_SQL[name]).to_arrow_table()
        return table.cast(KPID_MAP_SCHEMA) if name == "kpid_map" else table


def build_identity(con: duckdb.DuckDBPyConnection, events: str | pa.Table) -> IdentityResult:
    """Build the identity graph from event files (path/glob) or an Arrow table of events."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        seconds[name] = round(now - started, 3)
        started = now

    for macro in placeholder_macros():
        con.execute(macro)
    con.execute(_links_sql(_source_sql(con, events)))
    step("links")
    for statement in _USERS_AND_ALIASES:
        con.execute(statement)
    step("users_and_aliases")
    rounds = _components(con)
    step("alias_components")
    for statement in _PROFILES:
        con.execute(statement)
    step("profiles")
    counts = {name: _count(con, f"ep_{name}") for name in TABLES}
    counts["alias_nodes"] = _count(con, "ep_nodes")
    counts["links"] = _count(con, "ep_links")
    log.info(
        "identity graph: %s; alias components in %d rounds; seconds %s", counts, rounds, seconds
    )
    return IdentityResult(con, counts, rounds, seconds)


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def assign_kpids(
    con: duckdb.DuckDBPyConnection,
    events: pa.Table | duckdb.DuckDBPyRelation,
    kpid_map: pa.Table,
) -> pa.Table:
    """`events` with `kpid` filled from `kpid_map`; every other column and the row order kept.

    kpid of the userId as a 'user' id, else of the anonymousId as an 'anonymous' id,
    else null (`Resolution.kpid_of_event`; placeholders are never in the map). An
    existing `kpid` column is replaced in place, otherwise one is appended.
    """
    if isinstance(events, duckdb.DuckDBPyRelation):
        events = events.to_arrow_table()
    return KpidStitcher(kpid_map).bind(con).stitch(events)
