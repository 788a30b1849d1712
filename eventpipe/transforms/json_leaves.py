"""Incoming JSON, leaf by leaf: which paths are read, how each is checked and typed.

Everything here is derived from the event schema (`eventpipe.schemas`). The
stages extract every leaf of an incoming event as its JSON text (one DuckDB
`json_extract` over a list of paths: the event is parsed once), then use the
SQL built here to check the JSON type and value of each leaf and to cast it to
the lake type. Pure SQL generation: no Beam, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventpipe.schemas import EVENT_FIELDS, Field, iter_leaves
from eventpipe.transforms import failures as F
from eventpipe.transforms.duck import quote_ident as qi
from eventpipe.transforms.duck import quote_str as qs

# Fields computed by the pipeline, never read from input.
NOT_READ = frozenset({"kpid"})
# Accepted in input as aliases of context.session.id / context.session.start (RudderStack).
ALIASES = (
    ("context.sessionId", Field("sessionId", "int", "Session ID", bit_size=64)),
    ("context.sessionStart", Field("sessionStart", "boolean", "Session start")),
)
# Value ranges stated by seed 000 beyond the storage type.
INT_RANGES: dict[str, tuple[int, int]] = {
    "context.screen.width": (1, 32767),
    "context.screen.height": (1, 32767),
}
_INT_BOUNDS = {16: (-(2**15), 2**15 - 1), 32: (-(2**31), 2**31 - 1), 64: (-(2**63), 2**63 - 1)}

# ISO 8601 date or date-time, as a JSON string (quotes included); the year range
# and calendar validity are checked after the cast.
_ISO_JSON = (
    r'^"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?"$'
)
_MIN_TS = "TIMESTAMPTZ '0001-01-01 00:00:00+00'"
_MAX_TS = "TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"


@dataclass(frozen=True)
class Leaf:
    """One path read from incoming JSON (a value, or an object section)."""

    path: str
    field: Field
    column_name: str | None = None  # defaults to the path

    @property
    def column(self) -> str:
        """The quoted column holding the leaf's JSON text."""
        return qi(self.column_name or self.path)

    @property
    def is_section(self) -> bool:
        return self.field.kind == "object"


def _sections(fields: tuple[Field, ...], prefix: str = "") -> list[Leaf]:
    out: list[Leaf] = []
    for f in fields:
        if f.kind == "object":
            out.append(Leaf(prefix + f.name, f))
            out.extend(_sections(f.children, prefix + f.name + "."))
    return out


def event_leaves() -> list[Leaf]:
    """Every path read from an incoming event: sections first, then values, then aliases."""
    values = [Leaf(p, f) for p, f in iter_leaves() if p not in NOT_READ]
    return _sections(EVENT_FIELDS) + values + [Leaf(p, f) for p, f in ALIASES]


def context_leaves() -> list[Leaf]:
    """The paths of a batch-level `context` object, relative to the batch (`context.x`)."""
    return [leaf for leaf in event_leaves() if leaf.path.startswith("context.")]


def json_path(path: str) -> str:
    """The JSONPath of a dotted leaf path (`context.page.url` -> `$.context.page.url`)."""
    return "$." + ".".join(f'"{part}"' for part in path.split("."))


def extract_list(json_expr: str, leaves: list[Leaf], strip_prefix: str = "") -> str:
    """SQL: one `json_extract` of all leaves (as a list of JSON texts, one parse)."""
    paths = ", ".join(qs(json_path(leaf.path.removeprefix(strip_prefix))) for leaf in leaves)
    return f"json_extract({json_expr}, [{paths}])"


def leaf_columns(list_expr: str, leaves: list[Leaf]) -> str:
    """SQL select-list: each leaf's JSON text as its own column, JSON null as SQL NULL."""
    return ", ".join(
        f"nullif({list_expr}[{i}], 'null') AS {leaf.column}" for i, leaf in enumerate(leaves, 1)
    )


def timestamp_expr(x: str) -> str:
    """SQL: the TIMESTAMPTZ of a JSON-text ISO 8601 string, NULL when it is not one.

    The year range is checked apart (`timestamp_in_range`), on the parsed value.
    """
    return f"(CASE WHEN regexp_matches({x}, {qs(_ISO_JSON)}) THEN TRY_CAST(({x})->>'$' AS TIMESTAMPTZ) END)"


def timestamp_in_range(ts: str) -> str:
    """SQL: whether a TIMESTAMPTZ is finite and within years 1..9999 (UTC)."""
    return f"(isfinite({ts}) AND {ts} BETWEEN {_MIN_TS} AND {_MAX_TS})"


def ts_column(leaf: Leaf) -> str:
    """The quoted name of the parsed-timestamp column of a datetime leaf."""
    return qi("ts:" + leaf.path)


def _int_bounds(leaf: Leaf) -> tuple[int, int]:
    return INT_RANGES.get(leaf.path, _INT_BOUNDS[leaf.field.bit_size or 64])


def leaf_problems(
    leaf: Leaf, ip_ok: str | None = None, label: str = "property"
) -> list[tuple[str, str, str]]:
    """(condition, reason, message) for each way a present leaf can be invalid.

    Conditions are SQL over the leaf's JSON-text column and hold when the leaf is
    wrong; they are only evaluated when the leaf is present (not null).
    `ip_ok` is an SQL boolean telling whether an `ip` leaf is an acceptable address;
    `label` starts each message ("property", "batch property", ...).
    """
    x, p, kind = leaf.column, leaf.path, leaf.field.kind
    problems = _problems(leaf, x, p, kind, ip_ok)
    return [(cond, reason, f"{label} {msg}") for cond, reason, msg in problems]


def _problems(
    leaf: Leaf, x: str, p: str, kind: str, ip_ok: str | None
) -> list[tuple[str, str, str]]:
    is_str = f"left({x}, 1) = '\"'"
    numeric = f"json_type({x}) IN ('BIGINT', 'UBIGINT', 'DOUBLE')"
    if kind in ("object", "json"):
        what = "an object" if kind == "object" else "a JSON object"
        return [(f"left({x}, 1) <> '{{'", F.INVALID_TYPE, f"'{p}' must be {what}")]
    if kind in ("string", "uuid"):
        problems = [(f"NOT {is_str}", F.INVALID_TYPE, f"'{p}' must be a string")]
        if leaf.field.values and p == "type":
            allowed = ", ".join(qs(v) for v in leaf.field.values)
            problems.append(
                (
                    f"({x})->>'$' NOT IN ({allowed})",
                    F.INVALID_VALUE,
                    f"'type' must be one of {', '.join(leaf.field.values)}",
                )
            )
        return problems
    if kind == "ip":
        problems = [(f"NOT {is_str}", F.INVALID_TYPE, f"'{p}' must be a string")]
        if ip_ok is not None:
            problems.append(
                (
                    f"NOT coalesce({ip_ok}, false)",
                    F.INVALID_VALUE,
                    f"'{p}' must be a valid, non-multicast IPv4 or IPv6 address",
                )
            )
        return problems
    if kind == "boolean":
        return [(f"{x} NOT IN ('true', 'false')", F.INVALID_TYPE, f"'{p}' must be a boolean")]
    if kind == "int":
        lo, hi = _int_bounds(leaf)
        return [
            (
                f"json_type({x}) NOT IN ('BIGINT', 'UBIGINT')",
                F.INVALID_TYPE,
                f"'{p}' must be an integer",
            ),
            (
                f"NOT coalesce(TRY_CAST({x} AS HUGEINT) BETWEEN {lo} AND {hi}, false)",
                F.INVALID_VALUE,
                f"'{p}' must be an integer in [{lo}, {hi}]",
            ),
        ]
    if kind == "float":
        return [(f"NOT {numeric}", F.INVALID_TYPE, f"'{p}' must be a number")]
    if kind == "decimal":
        d = f"TRY_CAST({x} AS DOUBLE)"
        precision, scale = leaf.field.precision or 38, leaf.field.scale or 0
        top = 10 ** (precision - scale)
        return [
            (f"NOT {numeric}", F.INVALID_TYPE, f"'{p}' must be a number"),
            (
                f"NOT ({d} > 0 AND {d} < {top} AND round({d}, {scale}) = {d})",
                F.INVALID_VALUE,
                f"'{p}' must be a positive number below {top} with at most {scale} decimals",
            ),
        ]
    if kind == "datetime":
        return [
            (f"NOT {is_str}", F.INVALID_TYPE, f"'{p}' must be a string"),
            (
                f"NOT coalesce({timestamp_in_range(ts_column(leaf))}, false)",
                F.INVALID_VALUE,
                f"'{p}' must be an ISO 8601 datetime with a year in 1..9999",
            ),
        ]
    raise ValueError(f"no check for kind {kind!r} of {p}")


def typed_expr(leaf: Leaf) -> str:
    """SQL: the leaf's value cast to its lake type (NULL when absent or not castable)."""
    x, f = leaf.column, leaf.field
    if f.kind in ("string", "uuid", "ip"):
        return f"CASE WHEN left({x}, 1) = '\"' THEN ({x})->>'$' END"
    if f.kind == "json":
        return x
    if f.kind == "boolean":
        return f"CASE {x} WHEN 'true' THEN true WHEN 'false' THEN false END"
    if f.kind == "int":
        sql_type = {16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}[f.bit_size or 64]
        return f"TRY_CAST({x} AS {sql_type})"
    if f.kind == "float":
        return f"TRY_CAST({x} AS DOUBLE)"
    if f.kind == "decimal":
        return f"TRY_CAST({x} AS DECIMAL({f.precision}, {f.scale}))"
    if f.kind == "datetime":
        return ts_column(leaf)
    raise ValueError(f"no value of kind {f.kind!r} for {leaf.path}")


def first_problem(cases: list[tuple[str, str, str | None, str]]) -> str:
    """SQL: a struct {reason, field, message} for the first case that holds, else NULL.

    `cases` are (condition, reason, field, message).
    """
    whens = "\n      ".join(
        f"WHEN {cond} THEN {{'reason': {qs(reason)}, 'field': {qs(field) if field else 'NULL::VARCHAR'}, 'message': {qs(msg)}}}"
        for cond, reason, field, msg in cases
    )
    return f"CASE\n      {whens}\n    END"


def presence_cases(
    leaves: list[Leaf],
    ip_ok: dict[str, str] | None = None,
    label: str = "property",
    reason: str | None = None,
) -> list[tuple[str, str, str, str]]:
    """Problem cases for every leaf, each guarded by the leaf being present.

    `reason`, when given, replaces the per-check reason (e.g. `invalid_batch`).
    """
    cases = []
    for leaf in leaves:
        for cond, why, msg in leaf_problems(leaf, (ip_ok or {}).get(leaf.path), label):
            guarded = f"{leaf.column} IS NOT NULL AND ({cond})"
            cases.append((guarded, reason or why, leaf.path, msg))
    return cases
