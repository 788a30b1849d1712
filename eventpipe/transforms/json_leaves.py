"""Incoming JSON, leaf by leaf: which paths are read, how each is checked and typed.

Everything here is derived from the event schema (`eventpipe.schemas`) and is
pure SQL generation (no Beam, no I/O). A stage reads an incoming object with
two DuckDB calls that each parse it once:

- `json_type(doc, [paths])`: the JSON type of every known path (or NULL when
  absent), which is what type checks look at;
- `json_transform(doc, spec)`: every known leaf converted to a SQL type, for the
  value checks (`CHECK_TYPES`) or for storage (`LAKE_TYPES`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from eventpipe.core.duck import quote_str as qs
from eventpipe.schemas import EVENT_FIELDS, Field, iter_leaves
from eventpipe.schemas.failures import INVALID_TYPE, INVALID_VALUE
from eventpipe.schemas.ip_addresses import IP_RULE

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

# The JSON types (as DuckDB's json_type names them) a leaf of each kind accepts.
JSON_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("VARCHAR",),
    "uuid": ("VARCHAR",),
    "ip": ("VARCHAR",),
    "datetime": ("VARCHAR",),
    "boolean": ("BOOLEAN",),
    "int": ("BIGINT", "UBIGINT"),
    "float": ("BIGINT", "UBIGINT", "DOUBLE"),
    "decimal": ("BIGINT", "UBIGINT", "DOUBLE"),
    "json": ("OBJECT",),
    "object": ("OBJECT",),
}
_TYPE_WORDS = {
    "string": "a string",
    "uuid": "a string",
    "ip": "a string",
    "datetime": "a string",
    "boolean": "a boolean",
    "int": "an integer",
    "float": "a number",
    "decimal": "a number",
    "json": "a JSON object",
    "object": "an object",
}

# ISO 8601 date or date-time with a year in 0001..9999 and a UTC offset within +-14:00 (the
# widest in use); the calendar (no 30 February) and the clock are checked by the cast.
ISO_8601 = (
    r"^([1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-\d{2}-\d{2}"
    r"([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?([Zz]|[+-](0\d|1[0-3])(:?[0-5]\d)?|[+-]14(:?00)?)?$"
)


ProblemCase = tuple[str, str, str | None, str]
"""(SQL condition, failure reason, field or None, message): one check of `first_problem`."""


@dataclass(frozen=True)
class Leaf:
    """One path read from incoming JSON (a value, or an object section)."""

    path: str
    field: Field

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
    """Every path read from an incoming event: sections, then values, then aliases."""
    values = [Leaf(p, f) for p, f in iter_leaves() if p not in NOT_READ]
    return _sections(EVENT_FIELDS) + values + [Leaf(p, f) for p, f in ALIASES]


def context_leaves() -> list[Leaf]:
    """The paths of a `context` object (as `context.x.y`), sections included."""
    return [leaf for leaf in event_leaves() if leaf.path.startswith("context.")]


def json_path(path: str) -> str:
    """The JSONPath of a dotted path (`context.page.url` -> `$."context"."page"."url"`)."""
    return "$." + ".".join(f'"{part}"' for part in path.split(".")) if path else "$"


def types_list(doc: str, paths: list[str]) -> str:
    """SQL: the list of the JSON types of `paths` in `doc` (one parse)."""
    return f"json_type({doc}, [{', '.join(qs(json_path(p)) for p in paths)}])"


def _check_type(f: Field) -> str:
    if f.kind == "decimal":
        # Rounded half-up to the column's scale, from the number's decimal text, exactly as
        # the storage type (`_lake_type`) rounds it, but with room to tell what does not fit.
        return f"DECIMAL(38, {f.scale or 0})"
    return {
        "int": "HUGEINT",
        "float": "DOUBLE",
        "boolean": "BOOLEAN",
        "json": "JSON",
    }.get(f.kind, "VARCHAR")


def _lake_type(f: Field) -> str:
    if f.kind == "datetime":
        return "TIMESTAMPTZ"  # only used on validated values
    if f.kind == "int":
        return {16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}[f.bit_size or 64]
    if f.kind == "decimal":
        return f"DECIMAL({f.precision}, {f.scale})"
    return _check_type(f)


def transform_structure(
    leaves: list[Leaf], strip_prefix: str = "", lake_types: bool = False
) -> dict:
    """The json_transform structure holding `leaves` (nested dicts of SQL type names)."""
    spec: dict = {}
    for leaf in leaves:
        if leaf.is_section:
            continue
        node = spec
        parts = leaf.path.removeprefix(strip_prefix).split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _lake_type(leaf.field) if lake_types else _check_type(leaf.field)
    return spec


def transform_spec(leaves: list[Leaf], strip_prefix: str = "", lake_types: bool = False) -> str:
    """The json_transform structure (as a SQL string literal) holding `leaves`."""
    return qs(json.dumps(transform_structure(leaves, strip_prefix, lake_types)))


def valid_timestamp(text: str) -> str:
    """SQL: the TIMESTAMPTZ of an ISO 8601 string with a year in 1..9999, else NULL."""
    return f"(CASE WHEN regexp_full_match({text}, {qs(ISO_8601)}) THEN TRY_CAST({text} AS TIMESTAMPTZ) END)"


def leaf_problems(
    leaf: Leaf, jtype: str, value: str, label: str = "property"
) -> list[tuple[str, str, str]]:
    """(condition, reason, message) for each way a present leaf can be wrong.

    `jtype` is SQL for the leaf's JSON type name, `value` SQL for its value
    converted to its check type (VARCHAR, HUGEINT, DOUBLE, BOOLEAN, JSON).
    Conditions hold when the leaf is wrong and are meant to be guarded by the
    leaf being present. `label` starts each message ("property", "batch property").
    """
    p, kind = leaf.path, leaf.field.kind
    allowed = ", ".join(qs(t) for t in JSON_TYPES[kind])
    out = [(f"{jtype} NOT IN ({allowed})", INVALID_TYPE, f"'{p}' must be {_TYPE_WORDS[kind]}")]
    if p == "type" and leaf.field.values:
        values = ", ".join(qs(v) for v in leaf.field.values)
        out.append(
            (
                f"{value} NOT IN ({values})",
                INVALID_VALUE,
                f"'type' must be one of {', '.join(leaf.field.values)}",
            )
        )
    elif kind == "ip":
        out.append(
            (
                f"NOT coalesce(ip_ok({value}), false)",
                INVALID_VALUE,
                f"'{p}' must be {IP_RULE}",
            )
        )
    elif kind == "int":
        lo, hi = INT_RANGES.get(p, _INT_BOUNDS[leaf.field.bit_size or 64])
        out.append(
            (
                f"NOT coalesce({value} BETWEEN {lo} AND {hi}, false)",
                INVALID_VALUE,
                f"'{p}' must be an integer in [{lo}, {hi}]",
            )
        )
    elif kind == "decimal":
        out += _decimal_problems(leaf, value)
    elif kind == "float":
        out.append((f"NOT isfinite({value})", INVALID_VALUE, f"'{p}' must be a finite number"))
    elif kind == "datetime":
        out.append(
            (
                f"{valid_timestamp(value)} IS NULL",
                INVALID_VALUE,
                f"'{p}' must be an ISO 8601 datetime with a year in 1..9999 "
                "and a UTC offset within +-14:00",
            )
        )
    return [(cond, reason, f"{label} {msg}") for cond, reason, msg in out]


def _decimal_problems(leaf: Leaf, value: str) -> list[tuple[str, str, str]]:
    """A decimal leaf is rounded half-up to its scale (`value` is already rounded, see
    `_check_type`); only what the column cannot hold is wrong: not finite or too large,
    not positive, or rounded to zero."""
    p, precision, scale = leaf.path, leaf.field.precision or 38, leaf.field.scale or 0
    top, unit = 10 ** (precision - scale), 10**-scale
    rounding = f"after rounding half-up to {scale} decimals"
    return [
        (
            f"{value} IS NULL OR {value} >= {top}",
            INVALID_VALUE,
            f"'{p}' must be a finite number below {top} {rounding}",
        ),
        (f"{value} < 0", INVALID_VALUE, f"'{p}' must be positive"),
        (
            f"{value} = 0",
            INVALID_VALUE,
            f"'{p}' must be positive: it is 0 {rounding} (the smallest value stored is {unit})",
        ),
    ]


def is_present(jtype: str) -> str:
    """SQL: whether a path is present and not JSON null, from its JSON type."""
    return f"coalesce({jtype} <> 'NULL', false)"


def problem_cases(
    leaves: list[Leaf],
    jtype_of,
    value_of,
    label: str = "property",
    reason: str | None = None,
) -> list[ProblemCase]:
    """(condition, reason, field, message) for every leaf, each guarded by its presence.

    `jtype_of(leaf)` / `value_of(leaf)` give the SQL of a leaf's JSON type and
    check-typed value; `reason`, when given, replaces each check's own reason.
    """
    cases: list[ProblemCase] = []
    for leaf in leaves:
        for cond, why, msg in leaf_problems(leaf, jtype_of(leaf), value_of(leaf), label):
            cases.append(
                (f"{is_present(jtype_of(leaf))} AND ({cond})", reason or why, leaf.path, msg)
            )
    return cases


def group_of(leaf: Leaf) -> str:
    """The section whose presence guards a leaf's checks ('' for top-level values)."""
    if leaf.is_section:
        return leaf.path
    return leaf.path.rsplit(".", 1)[0] if "." in leaf.path else ""


def first_problem(cases: list[ProblemCase]) -> str:
    """SQL: a struct {reason, field, message} for the first case that holds, else NULL."""
    whens = "\n      ".join(
        f"WHEN {cond} THEN {{'reason': {qs(reason)}, "
        f"'field': {qs(field) if field else 'NULL::VARCHAR'}, 'message': {qs(msg)}}}"
        for cond, reason, field, msg in cases
    )
    return f"CASE\n      {whens}\n    END"


def struct_access(root: str, path: str, strip_prefix: str = "") -> str:
    """SQL: a nested struct field (`root.context.page.url`), each part quoted."""
    parts = path.removeprefix(strip_prefix).split(".")
    return root + "".join(f'."{part}"' for part in parts)


def object_keys(doc: str, paths: list[str]) -> str:
    """SQL: the keys (duplicates included) of the objects at `paths` of `doc`, a list per
    path (empty or NULL where there is no object), in one parse."""
    return f"json_keys({doc}, [{', '.join(qs(json_path(p)) for p in paths)}])"


def check_order(leaves: list[Leaf]) -> list[Leaf]:
    """The leaves in the order their problems are reported: section by section
    (by first appearance), each section's leaves in their order."""
    groups: dict[str, list[Leaf]] = {}
    for leaf in leaves:
        groups.setdefault(group_of(leaf), []).append(leaf)
    return [leaf for members in groups.values() for leaf in members]


class RankedChecks:
    """Problem checks ranked in the order they are reported; the first problem is the one of
    the smallest rank whose condition holds. Data-driven SQL: a plan with few expressions
    (DuckDB initialises every expression of a plan at each run)."""

    def __init__(self) -> None:
        self.problems: list[ProblemCase] = []
        self.ranks: list[str] = []  # SQL: a rank, or NULL

    def add(self, case: ProblemCase) -> None:
        """One check, ranked after those added before."""
        self.ranks.append(f"CASE WHEN {case[0]} THEN {len(self.problems)} END")
        self.problems.append(case)

    def add_per_value(self, when: str, value: str, cases: dict[str, ProblemCase]) -> None:
        """Checks that hold with `when` for one value of `value` each (`cases` by value, in
        their order): one expression."""
        listed = ", ".join(qs(v) for v in cases)
        self.ranks.append(
            f"CASE WHEN {when} THEN {len(self.problems) - 1} + list_position([{listed}], {value}) END"
        )
        self.problems.extend(cases.values())

    def add_leaves(
        self,
        leaves: list[Leaf],
        types: str,
        jtype_of,
        value_of,
        label: str = "property",
        reason: str | None = None,
        one_expression: bool = True,
    ) -> None:
        """The checks of `leaves` (`leaf_problems`: its JSON type, then its values), in their
        order. `types` is SQL for the list of their JSON types, in the same order: with
        `one_expression` one list expression finds the first wrong one (cheaper per run),
        else one CASE branch a leaf (cheaper per row)."""
        type_ranks, type_cases = [], []
        for leaf in leaves:
            kind_check, *value_checks = problem_cases([leaf], jtype_of, value_of, label, reason)
            type_ranks.append(str(len(self.problems)))
            type_cases.append(f"WHEN {kind_check[0]} THEN {len(self.problems)}")
            self.problems.append(kind_check)
            for check in value_checks:
                self.add(check)
        if not leaves:
            return
        if not one_expression:
            self.ranks.append("CASE " + " ".join(type_cases) + " END")
            return
        allowed = ", ".join(
            "[" + ", ".join(qs(t) for t in JSON_TYPES[leaf.field.kind]) + "]" for leaf in leaves
        )
        wrong = (  # the first leaf present with a JSON type it does not accept
            f"list_position(list_transform(list_zip({types}, [{allowed}]), "
            "lambda x: coalesce(x[1] <> 'NULL' AND NOT list_contains(x[2], x[1]), false)), true)"
        )
        self.ranks.append(f"[{', '.join(type_ranks)}][{wrong}]")

    def first_problem(self) -> str:
        """SQL: a struct {reason, field, message} for the first check that holds, else NULL."""
        table = ", ".join(
            f"{{'reason': {qs(reason)}, 'field': {qs(field) if field else 'NULL::VARCHAR'}, "
            f"'message': {qs(message)}}}"
            for _, reason, field, message in self.problems
        )
        return f"[{table}][least({', '.join(self.ranks)}) + 1]"
