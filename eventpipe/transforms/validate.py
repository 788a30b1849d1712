"""Validate: parsed events (JSON text) -> valid events | failed(reason, field, message).

Every rule of seed 000: the JSON type and value of every known property
(generated from the schema, see `json_leaves`), the per-type required and
not-permitted properties (`event_rules`), anonymousId/userId, and timestamp
required with originalTimestamp. Beyond the seed: no value anywhere in the event
that no reader can hold (`json_audit`: not finite, beyond a double or 64 bits,
nested too deep), and no key twice in the event, its context or the first level of
its properties/traits (`invalid_json`). Unknown properties are ignored; JSON null
counts as absent. The first problem found is the one reported.

Vectorised: DuckDB reads each event three times (`json_type` of every path,
`json_transform` of the leaves whose values are checked, `json_keys`); IPs are checked
once per distinct value, and only the rare suspect text is walked by `json_audit`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.core.duck import SMALL_CHUNK_ROWS, ChunkQuery, conform
from eventpipe.core.duck import quote_str as qs
from eventpipe.core.json_audit import MAX_DEPTH, deep_sql, duplicate_keys, suspects
from eventpipe.schemas import EVENT_TYPES
from eventpipe.schemas.failures import (
    INVALID_EVENT,
    INVALID_VALUE,
    MISSING_PROPERTY,
    PROPERTY_NOT_PERMITTED,
    empty_failed,
    failed_rows,
)
from eventpipe.schemas.records import PARSED_SCHEMA
from eventpipe.transforms.event_rules import NON_EMPTY, PERMITTED_ONLY_FOR, REQUIRED_FOR, article
from eventpipe.transforms.json_leaves import (
    Leaf,
    RankedChecks,
    check_order,
    event_leaves,
    group_of,
    is_present,
    object_keys,
    struct_access,
    transform_spec,
    types_list,
    valid_timestamp,
)


@dataclass(frozen=True)
class ValidateResult:
    valid: pa.Table  # PARSED_SCHEMA: the events that passed
    failed: pa.Table  # failures.FAILED_SCHEMA


VALIDATE_INPUT = PARSED_SCHEMA.append(pa.field("suspect", pa.bool_()))
"""What `problem_sql` reads: parsed events, and whether `json_audit.suspects` flags each."""


def _add_rules(checks: RankedChecks, present, value) -> None:
    """The per-type rules of `event_rules`, in the order they are reported: one expression per
    property (the event's type is looked up in a list, not one branch a type)."""
    t = value("type")
    for name in NON_EMPTY:
        message = f"property '{name}' cannot be empty"
        checks.add((f"{present(name)} AND {value(name)} = ''", INVALID_VALUE, name, message))
    for name, allowed in PERMITTED_ONLY_FOR.items():
        message = "property '{}' is not permitted for {} {} event"
        cases = {
            ty: ("", PROPERTY_NOT_PERMITTED, name, message.format(name, article(ty), ty))
            for ty in EVENT_TYPES
            if ty not in allowed
        }
        checks.add_per_value(present(name), t, cases)
    for name, types in REQUIRED_FOR.items():
        message = "property '{}' is required for {} {} event"
        cases = {
            ty: ("", MISSING_PROPERTY, name, message.format(name, article(ty), ty)) for ty in types
        }
        checks.add_per_value(f"NOT {present(name)}", t, cases)
    checks.add(
        (
            f"NOT {present('anonymousId')} AND NOT {present('userId')}",
            MISSING_PROPERTY,
            "anonymousId",
            "either 'anonymousId' or 'userId' is required",
        )
    )
    checks.add(
        (
            f"{present('originalTimestamp')} AND NOT {present('timestamp')}",
            MISSING_PROPERTY,
            "timestamp",
            "property 'timestamp' is required when 'originalTimestamp' is present",
        )
    )


# Objects whose keys are checked for duplicates: the event, its context, and the first
# level of its JSON properties (deeper levels are not: see docs/import.md).
_KEYED_OBJECTS = ["", "context", "properties", "traits"]


def _audit_problem() -> str:
    """SQL: the problem struct of `audit` (json_audit's [path, message]), else NULL."""
    path, message = "json_extract_string(audit, '$[0]')", "json_extract_string(audit, '$[1]')"
    return (
        f"CASE WHEN audit IS NOT NULL THEN {{'reason': {qs(INVALID_VALUE)}, "
        f"'field': {path}, 'message': {message}}} END"
    )


def problem_sql(
    max_depth: int = MAX_DEPTH,
    sections: frozenset[str] | None = None,
    source: str = "validate_input",
    few_expressions: bool = True,
) -> str:
    """SQL: the first problem (NULL when valid) of every event of `source` (VALIDATE_INPUT).

    With `sections`, the checks of the other sections' leaves are left out: a leaf of a
    section the event does not carry is absent, so over events that carry none of the other
    sections the query answers as the full one (`possible_sections` tells which may be).

    One row per event, in input order: line, index, problem, failure_received_at, and
    keys (the key lists of `_KEYED_OBJECTS`, for `json_audit.duplicate_keys`).

    Every check has a rank, the order problems are reported in (`_check_order`: the JSON
    type, then the value checks of each leaf; then the per-type rules); the first problem is
    the one of the smallest rank. Each value check is one expression giving its rank, each
    per-type rule one per property. The JSON types of all leaves are one list expression
    with `few_expressions` (DuckDB initialises every expression of a plan at each run: what a
    collector's small group pays; 46 CASE branches in all instead of 166), else a CASE
    branch per leaf (~2 us an event cheaper: for big chunks). Values no reader can hold
    (`json_audit`) come first.
    """
    leaves = event_leaves()
    if sections is not None:
        leaves = [leaf for leaf in leaves if not group_of(leaf) or group_of(leaf) in sections]
    leaves = sorted(check_order(leaves), key=lambda leaf: leaf.path != "type")  # type first
    paths = ["", *(leaf.path for leaf in leaves)]  # t[1] is the type of the event itself
    position = {p: i for i, p in enumerate(paths, 1)}
    by_path = {leaf.path: leaf for leaf in leaves}

    def jtype(leaf: Leaf) -> str:
        return f"t[{position[leaf.path]}]"

    def value(leaf: Leaf) -> str:
        return struct_access("v", leaf.path)

    def present(path: str) -> str:
        return is_present(jtype(by_path[path]))

    checks = RankedChecks()
    checks.add((f"NOT {present('type')}", MISSING_PROPERTY, "type", "property 'type' is required"))
    checks.add_leaves(leaves, "t[2:]", jtype, value, one_expression=few_expressions)
    _add_rules(checks, present, lambda path: value(by_path[path]))
    problem = f"coalesce({_audit_problem()}, {checks.first_problem()})"
    not_object = f"{{'reason': {qs(INVALID_EVENT)}, 'field': NULL::VARCHAR, 'message': 'the event must be a JSON object'}}"
    received = valid_timestamp(value(by_path["receivedAt"]))
    # Most leaves only have their JSON type checked: the values read are a fraction.
    read = [leaf for leaf in leaves if _reads(" ".join([*checks.ranks, received]), value(leaf))]
    return f"""
        WITH x AS (
          SELECT *, CASE WHEN t[1] = 'OBJECT' THEN json_transform(payload, {transform_spec(read)}) END AS v,
                 CASE WHEN t[1] = 'OBJECT' AND (suspect OR {deep_sql("payload", max_depth)})
                      THEN json_audit(payload, {int(max_depth)}) END AS audit,
                 CASE WHEN t[1] = 'OBJECT' THEN {object_keys("payload", _KEYED_OBJECTS)} END AS keys
          FROM (SELECT *, {types_list("payload", paths)} AS t FROM {source}))
        SELECT line, "index",
               CASE WHEN t[1] IS DISTINCT FROM 'OBJECT' THEN {not_object} ELSE {problem} END AS problem,
               coalesce(received_at, {received}) AS failure_received_at, keys
        FROM x
    """


SECTIONS = tuple(leaf.path for leaf in event_leaves() if leaf.is_section)
ALL_SECTIONS = frozenset(SECTIONS)
MAX_PLANS = 16
"""How many section sets an EventValidator plans a query for (others run all sections')."""


def possible_sections(payloads: pa.Array | pa.ChunkedArray) -> frozenset[str] | None:
    """The sections (`context`, `context.page`...) that an event of `payloads` (strings)
    may carry: those whose every key appears in the texts as a JSON string. None (any) when
    a text holds a `\\u` escape, which could spell a key otherwise."""
    chunks = payloads.chunks if isinstance(payloads, pa.ChunkedArray) else [payloads]
    # The texts' data buffers (a slice's buffer may hold more text: more keys found, never fewer).
    text = b"".join(c.buffers()[2].to_pybytes() for c in chunks if c.buffers()[2] is not None)
    if b"\\u" in text:
        return None
    keys = {key for path in SECTIONS for key in path.split(".")}
    found = {key for key in keys if f'"{key}"'.encode() in text}
    return frozenset(p for p in SECTIONS if all(key in found for key in p.split(".")))


def _reads(sql: str, value: str) -> bool:
    """Whether `sql` reads the struct field `value` itself (not only a field inside it)."""
    return re.search(re.escape(value) + r'(?!\.")', sql) is not None


class EventValidator:
    """Checks chunks of parsed events against seed 000.

    `bind(con)` plans the SQL once in a DuckDB session; `validate` runs it per chunk.
    """

    def __init__(self, run_id: str, run_start: datetime, max_depth: int = MAX_DEPTH) -> None:
        self.run_id = run_id
        self.run_start = run_start
        self.max_depth = max_depth
        # Big chunks: a CASE branch per leaf's JSON type (cheaper per event than the list).
        query = problem_sql(max_depth, few_expressions=False)
        self.query = ChunkQuery("validate_input", VALIDATE_INPUT, query)
        self.plans: dict[frozenset[str], ChunkQuery] = {}
        self.con: duckdb.DuckDBPyConnection | None = None

    def bind(self, con: duckdb.DuckDBPyConnection) -> EventValidator:
        """Prepare the query in `con` (once per session)."""
        self.query.prepare(con)
        self.con = con
        self.plans = {}
        return self

    def query_for(self, payloads: pa.ChunkedArray) -> ChunkQuery:
        """The query for a chunk. A big chunk runs the one planned for per-event cost. A small
        one (a collector's group) runs one with few expressions (DuckDB initialises every
        expression of a plan at each run), planned once for the sections its events may
        carry (up to MAX_PLANS section sets; else, and when any may be, for all)."""
        if len(payloads) > SMALL_CHUNK_ROWS:  # a big chunk: the fixed cost does not count
            return self.query
        sections = possible_sections(payloads)
        if sections is None or (sections not in self.plans and len(self.plans) >= MAX_PLANS):
            sections = ALL_SECTIONS
        query = self.plans.get(sections)
        if query is None:
            name = f"validate_input_{len(self.plans)}"
            query = ChunkQuery(name, VALIDATE_INPUT, problem_sql(self.max_depth, sections, name))
            query.prepare(self.con)
            self.plans[sections] = query
        return query

    def validate(self, events: pa.Table) -> ValidateResult:
        """Validate one chunk of parsed events (PARSED_SCHEMA).

        Only the problems come out of DuckDB; the valid events are the input's own rows.
        """
        assert self.con is not None, "bind() the validator to a DuckDB session first"
        events = conform(events, PARSED_SCHEMA)
        suspect = suspects(events["payload"])
        checked = self.query_for(events["payload"]).run(
            self.con, events.append_column("suspect", suspect), in_order_of=("line", "index")
        )
        problem = checked["problem"]
        twice = duplicate_keys(checked["keys"], _KEYED_OBJECTS, "the event")
        if twice is not None:  # a key twice comes first: which value counts is unknown
            problem = pc.coalesce(twice, problem)
        invalid = pc.is_valid(problem)
        if not pc.any(invalid).as_py():
            return ValidateResult(events, empty_failed())
        checked = events.append_column("problem", problem).append_column(
            "failure_received_at", checked["failure_received_at"]
        )
        failed = failed_rows(
            checked, "payload", self.run_id, self.run_start, received_column="failure_received_at"
        )
        return ValidateResult(events.filter(pc.invert(invalid)), failed)
