"""The leaf checks of incoming JSON (`transforms/json_leaves.py`): what a bad value gets
(reason, field, message word for word) through the validator and the record parser on real
records, which problem of several is reported, and the decimal, integer and label rules of
`leaf_problems` evaluated by DuckDB for fields the schema may gain.

Each test builds its own `Stages`: the stages plan their SQL once, when built, so a test
that reuses a session's stages would not see a change to the rules (mutation testing).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from eventpipe.schemas import Field, arrow_schema
from eventpipe.transforms.json_leaves import (
    ALIASES,
    Leaf,
    event_leaves,
    leaf_problems,
    struct_access,
    transform_spec,
)

from pipeline_support import Stages, make_event

DENSITY = "context.screen.density"
ROUNDED = "after rounding half-up to 2 decimals"


def _verdicts(*records: Any) -> list[tuple[str, str, str] | None]:
    """(reason, field, message) of each record's failure, None for a valid one (one event
    per record), from fresh stages."""
    out = Stages().run(*records)
    failed = {f["line"]: (f["reason"], f["field"], f["message"]) for f in out.failed}
    assert out.read == len(records) == len(failed) + len(out.events)
    return [failed.get(line) for line in range(1, len(records) + 1)]


def test_a_density_is_checked_after_rounding_to_its_two_decimals() -> None:
    """The decimal rule on the schema's decimal leaf: rounded half-up to 2 decimals, then
    positive and below 10, each with its own message."""
    densities = [0.4, 9.5, 0.005, 9.994, 0, 0.004, -1, -0.001, 9.995, 10, 1e40]
    got = _verdicts(*(make_event(context={"screen": {"density": d}}) for d in densities))
    zero = (
        f"property '{DENSITY}' must be positive: it is 0 {ROUNDED}"
        " (the smallest value stored is 0.01)"
    )
    too_big = f"property '{DENSITY}' must be a finite number below 10 {ROUNDED}"
    negative = f"property '{DENSITY}' must be positive"
    assert got == [
        None,
        None,
        None,
        None,
        ("invalid_value", DENSITY, zero),
        ("invalid_value", DENSITY, zero),
        ("invalid_value", DENSITY, negative),
        ("invalid_value", DENSITY, zero),  # -0.001 rounds to 0 (half-up, away from zero)
        ("invalid_value", DENSITY, too_big),
        ("invalid_value", DENSITY, too_big),
        ("invalid_value", DENSITY, too_big),
    ]


def test_one_problem_per_event_the_first_in_section_order() -> None:
    """An event with several bad values is reported once, for the first of them: the
    sections come first (a section's own values before its subsections', subsections in
    schema order), the top-level values after them."""
    ip = (
        "property 'context.ip' must be an IPv4 or IPv6 address, not multicast and"
        " without a zone (%...)"
    )
    got = _verdicts(
        make_event(anonymousId=7, context={"ip": "x"}),
        make_event(context={"app": {"name": 5}, "ip": "x"}),
        make_event(context={"screen": {"width": 0}, "app": {"name": 5}}),
        make_event(context={"page": {"url": 1}, "locale": 5}),
        make_event(anonymousId=7, channel=5),
    )
    assert got == [
        ("invalid_value", "context.ip", ip),
        ("invalid_value", "context.ip", ip),
        ("invalid_type", "context.app.name", "property 'context.app.name' must be a string"),
        ("invalid_type", "context.locale", "property 'context.locale' must be a string"),
        ("invalid_type", "anonymousId", "property 'anonymousId' must be a string"),
    ]


def test_a_batch_property_is_named_as_such() -> None:
    batch = {"batch": [make_event()], "sentAt": "2026-11-20T10:00:01Z"}
    got = _verdicts(
        {**batch, "sentAt": "yesterday"},
        {**batch, "context": {"ip": 5}},
        {**batch, "context": {"screen": {"density": 0}}},
    )
    assert got == [
        (
            "invalid_batch",
            "sentAt",
            "batch property 'sentAt' must be an ISO 8601 datetime with a year in 1..9999"
            " and a UTC offset within +-14:00",
        ),
        ("invalid_batch", "context.ip", "batch property 'context.ip' must be a string"),
        (
            "invalid_batch",
            DENSITY,
            f"batch property '{DENSITY}' must be positive: it is 0 {ROUNDED}"
            " (the smallest value stored is 0.01)",
        ),
    ]


def _failing(leaf: Leaf, jtype: str, value: str) -> list[tuple[str, str]]:
    """(reason, message) of each of `leaf_problems` that holds for a value (SQL literals),
    evaluated by DuckDB."""
    problems = leaf_problems(leaf, jtype, value)
    sql = f"SELECT [{', '.join(f'({c})' for c, _, _ in problems)}]"
    [(holds,)] = duckdb.connect().execute(sql).fetchall()
    return [(reason, msg) for (_, reason, msg), hit in zip(problems, holds, strict=True) if hit]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("999.99", []),
        ("0.01", []),
        ("1000", [("invalid_value", "must be a finite number below 1000")]),
        ("-5", [("invalid_value", "must be positive")]),
        ("0", [("invalid_value", "must be positive: it is 0")]),
    ],
)
def test_decimal_bounds_follow_precision_and_scale(value: str, expected: list) -> None:
    """A DECIMAL(5, 2) leaf holds values below 10^(5-2), from 0.01."""
    leaf = Leaf("amount", Field("amount", "decimal", "Amount", precision=5, scale=2))
    got = _failing(leaf, "'DOUBLE'", f"CAST({value} AS DECIMAL(38, 2))")
    assert [(r, m.split(" after ")[0]) for r, m in got] == [
        (r, f"property 'amount' {m}") for r, m in expected
    ]
    zero = [m for _, m in got if "it is 0" in m]
    assert all(m.endswith("(the smallest value stored is 0.01)") for m in zero)


def test_a_decimal_leaf_of_scale_0_is_a_whole_number() -> None:
    leaf = Leaf("n", Field("n", "decimal", "N", precision=4, scale=0))
    rounded = "after rounding half-up to 0 decimals"
    assert _failing(leaf, "'DOUBLE'", "CAST(9999.4 AS DECIMAL(38, 0))") == []
    assert _failing(leaf, "'DOUBLE'", "CAST(9999.5 AS DECIMAL(38, 0))") == [
        ("invalid_value", f"property 'n' must be a finite number below 10000 {rounded}")
    ]
    assert _failing(leaf, "'DOUBLE'", "CAST(0.4 AS DECIMAL(38, 0))") == [
        (
            "invalid_value",
            f"property 'n' must be positive: it is 0 {rounded} (the smallest value stored is 1)",
        )
    ]


def _transformed(spec: str, document: str) -> pa.Table:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con.sql(f"SELECT json_transform('{document}', {spec}) AS v").to_arrow_table()


def test_check_values_are_decimals_rounded_half_up_to_their_scale() -> None:
    """The value checks read a decimal rounded half-up to the field's scale (so 0.004 is 0
    for a 2-decimal field), and integers without a bound."""
    leaves = [
        Leaf("a", Field("a", "decimal", "A", precision=4, scale=0)),
        Leaf("x.b", Field("b", "decimal", "B", precision=3, scale=2)),
        Leaf("x.n", Field("n", "int", "N", bit_size=16)),
        Leaf("f", Field("f", "boolean", "F")),
        Leaf("d", Field("d", "float", "D")),
    ]
    document = '{"a": 2.5, "x": {"b": 0.125, "n": 99999999999999999999}, "f": true, "d": 1}'
    got = _transformed(transform_spec(leaves), document)
    assert got.to_pylist() == [
        {
            "v": {
                "a": Decimal("3"),
                "x": {"b": Decimal("0.13"), "n": 99999999999999999999},
                "f": True,
                "d": 1.0,
            }
        }
    ]
    assert got.schema.field("v").type.field("d").type == pa.float64()


def _at(struct: pa.DataType, path: str) -> pa.DataType:
    for part in path.split("."):
        struct = struct.field(part).type
    return struct


def test_lake_values_have_the_types_of_the_lake_columns() -> None:
    """`transform_spec(lake_types=True)` reads each leaf as its lake column's type: int16
    screen sizes, int32 connectionId, decimal(3, 2) density, UTC timestamps."""
    leaves = [leaf for leaf in event_leaves() if not leaf.is_section]
    got = _transformed(transform_spec(leaves, lake_types=True), "{}").schema.field("v").type
    lake = pa.struct(list(arrow_schema()))
    aliases = {path for path, _ in ALIASES}
    checked = 0
    for leaf in leaves:
        if leaf.path in aliases or leaf.field.kind in ("json", "string", "uuid", "ip"):
            continue
        assert _at(got, leaf.path) == _at(lake, leaf.path), leaf.path
        checked += 1
    assert checked >= 10
    unsized = [Leaf("n", Field("n", "int", "N"))]  # an int field without a bit size: 64 bits
    assert _transformed(transform_spec(unsized, lake_types=True), "{}").schema.field(
        "v"
    ).type == pa.struct([("n", pa.int64())])


def test_an_integer_leaf_without_a_bit_size_holds_64_bits() -> None:
    leaf = Leaf("n", Field("n", "int", "N"))
    message = "property 'n' must be an integer in [-9223372036854775808, 9223372036854775807]"
    assert _failing(leaf, "'BIGINT'", "9223372036854775807::HUGEINT") == []
    assert _failing(leaf, "'UBIGINT'", "9223372036854775808::HUGEINT") == [
        ("invalid_value", message)
    ]
    assert _failing(leaf, "'DOUBLE'", "NULL::HUGEINT") == [
        ("invalid_type", "property 'n' must be an integer"),
        ("invalid_value", message),
    ]


def test_struct_access_strips_the_prefix_of_the_struct() -> None:
    assert struct_access("v", "context.page.url") == 'v."context"."page"."url"'
    assert struct_access("ctx", "context.page.url", "context.") == 'ctx."page"."url"'
    assert struct_access("v", "page.context.", "context.") == 'v."page"."context".""'
