"""The optimistic typed pass of validation: the events that certainly pass every rule.

pyarrow's JSON reader reads a piece of events once, with a schema derived from the event
schema (each known leaf as the Arrow type of the JSON types it accepts,
`json_leaves.JSON_TYPES`; `properties`/`traits` as objects of any content). It refuses the
whole piece when a known property of any event has another JSON type, a known key comes
twice, or the text is not JSON: that piece goes to the full checker. On a piece it reads,
the value rules (`json_leaves.leaf_problems`) and the per-type rules (`event_rules`) are
tested on the typed columns, leaning to doubt where a typed value could round otherwise
(decimals near their bounds, datetimes in a form other than the usual
`YYYY-MM-DDThh:mm:ss[.ffffff](Z|+hh:mm)`).

A screen, not a checker: it gives no reason. An event it clears has no problem the full
checker (`validate.problem_sql`) would find; every other event goes to that checker, which
gives the exact reason, field and message (tests/transforms/test_typed_screen.py holds
the screen to that on every rule case).
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from eventpipe.schemas import EVENT_FIELDS, Field
from eventpipe.schemas.ip_addresses import analyse_ip
from eventpipe.transforms.event_rules import NON_EMPTY, PERMITTED_ONLY_FOR, REQUIRED_FOR
from eventpipe.transforms.json_leaves import (
    ALIASES,
    NOT_READ,
    Leaf,
    decimal_bounds,
    event_leaves,
    int_range,
)

PIECE_ROWS = 2048
"""Events read together: a piece the reader refuses goes whole to the full checker."""

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "uuid": pa.string(),
    "ip": pa.string(),
    "datetime": pa.string(),
    "boolean": pa.bool_(),
    "int": pa.int64(),  # the reader refuses a fraction or an integer beyond 64 bits
    "float": pa.float64(),  # integers too, as JSON_TYPES accepts them
    "decimal": pa.float64(),
    "json": pa.struct([]),  # any object; its content is not read
}

# The usual datetime form, within what `json_leaves.valid_timestamp` accepts (years
# 1000..8999 leave room for any UTC offset); the calendar is checked apart.
_USUAL_DATETIME = (
    r"^[1-8]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-](0\d|1[0-3]):[0-5]\d)$"
)


def _arrow_type(f: Field, aliases: tuple[tuple[str, Field], ...], path: str) -> pa.DataType:
    if f.kind != "object":
        return _ARROW_TYPES[f.kind]
    here = path + f.name
    fields = [pa.field(c.name, _arrow_type(c, aliases, here + ".")) for c in f.children]
    fields += [
        pa.field(a.name, _ARROW_TYPES[a.kind]) for p, a in aliases if p.rsplit(".", 1)[0] == here
    ]
    return pa.struct(fields)


SCREEN_SCHEMA = pa.schema(
    [pa.field(f.name, _arrow_type(f, ALIASES, "")) for f in EVENT_FIELDS if f.name not in NOT_READ]
)
"""What the reader reads of an event: every leaf the validation reads, typed."""


def _read(piece: pa.Array) -> pa.Table | None:
    """The piece's events typed, or None when the reader refuses one of them."""
    lines = pc.binary_join_element_wise(piece, "", "\n")  # each text and a line break
    if (
        pc.any(pc.match_substring(piece, "\n")).as_py()
        or pc.any(pc.match_substring(piece, "\r")).as_py()
    ):
        return None  # a text over several lines (a pretty-printed .json event): rare
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset :]
    data = lines.buffers()[2][offsets[0] : offsets[len(lines)]]
    try:
        table = pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 16)),
            parse_options=pj.ParseOptions(
                explicit_schema=SCREEN_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(piece) else None


def _column(table: pa.Table, path: str) -> pa.Array:
    root, *rest = path.split(".")
    column = table[root].combine_chunks()
    return pc.struct_field(column, rest) if rest else column


def _usual_datetimes(values: pa.Array) -> pa.Array:
    """Whether each (non-null) string is a datetime in the usual form on a real calendar day."""
    usual = pc.match_substring_regex(values, _USUAL_DATETIME)
    day = pc.utf8_slice_codeunits(values, 0, 10)
    parsed = pc.strptime(day, format="%Y-%m-%d", unit="s", error_is_null=True)
    same_day = pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), day)  # not 30 February
    return pc.and_kleene(usual, pc.fill_null(same_day, False))


def _acceptable_ips(values: pa.Array) -> pa.Array:
    distinct = pc.unique(values).drop_null()
    ok = pa.array([analyse_ip(v).acceptable for v in distinct.to_pylist()], pa.bool_())
    return pc.take(ok, pc.index_in(values, distinct))


def _value_ok(leaf: Leaf, values: pa.Array) -> pa.Array | None:
    """Whether each present value certainly passes the leaf's value checks (None: none)."""
    kind = leaf.field.kind
    if kind == "int":
        lo, hi = int_range(leaf)
        return pc.and_(pc.greater_equal(values, lo), pc.less_equal(values, hi))
    if kind == "float":
        return pc.is_finite(values)
    if kind == "decimal":  # clear of the bounds by more than the rounding can move a value
        unit, top = decimal_bounds(leaf)
        return pc.and_(pc.greater(values, unit * 0.6), pc.less(values, top - unit * 0.6))
    if kind == "datetime":
        return _usual_datetimes(values)
    if kind == "ip":
        return _acceptable_ips(values)
    if leaf.path == "type":
        return pc.is_in(values, pa.array(leaf.field.values))
    return None


def _rules_ok(present: dict[str, pa.Array], column, kind: pa.Array) -> pa.Array:
    """Whether each event certainly passes the per-type rules (`validate._rule_cases`)."""
    ok = pc.is_valid(kind)
    for name in NON_EMPTY:
        ok = pc.and_(ok, pc.fill_null(pc.not_equal(column(name), ""), True))
    for name, types in PERMITTED_ONLY_FOR.items():
        ok = pc.and_(ok, pc.or_(pc.invert(present[name]), pc.is_in(kind, pa.array(types))))
    for name, types in REQUIRED_FOR.items():
        ok = pc.and_(ok, pc.or_(present[name], pc.invert(pc.is_in(kind, pa.array(types)))))
    ok = pc.and_(ok, pc.or_(present["anonymousId"], present["userId"]))
    return pc.and_(ok, pc.or_(pc.invert(present["originalTimestamp"]), present["timestamp"]))


def _piece_clear(table: pa.Table) -> np.ndarray:
    """Which events of a typed piece certainly pass the value and per-type rules."""
    columns: dict[str, pa.Array] = {}

    def column(path: str) -> pa.Array:
        if path not in columns:
            columns[path] = _column(table, path)
        return columns[path]

    ok = pa.array(np.ones(table.num_rows, dtype=bool))
    for leaf in event_leaves():
        if leaf.is_section:
            continue
        values = column(leaf.path)
        checked = _value_ok(leaf, values)
        if checked is not None:  # null: absent, nothing to check
            ok = pc.and_(ok, pc.or_(pc.is_null(values), pc.fill_null(checked, False)))
    names = {*NON_EMPTY, *PERMITTED_ONLY_FOR, *REQUIRED_FOR}
    names |= {"anonymousId", "userId", "originalTimestamp", "timestamp"}
    present = {name: pc.is_valid(column(name)) for name in names}
    ok = pc.and_(ok, _rules_ok(present, column, column("type")))
    return np.asarray(pc.fill_null(ok, False), dtype=bool)


def clear_events(payloads: pa.Array | pa.ChunkedArray, doubtful: np.ndarray) -> np.ndarray:
    """Which events (JSON texts) certainly pass every rule of `validate`, given the rows
    already `doubtful` for reasons the reader cannot see (values no reader can hold, depth,
    keys twice): True where the full checker would find no problem."""
    texts = payloads.combine_chunks() if isinstance(payloads, pa.ChunkedArray) else payloads
    clear = np.zeros(len(texts), dtype=bool)
    for start in range(0, len(texts), PIECE_ROWS):
        piece = texts.slice(start, PIECE_ROWS)
        if doubtful[start : start + len(piece)].all():
            continue
        table = _read(piece)
        if table is not None:
            clear[start : start + len(piece)] = _piece_clear(table)
    return clear & ~doubtful

