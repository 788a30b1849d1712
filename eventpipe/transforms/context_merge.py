"""Merge an event's context with its batch's, leaf by leaf, on whole Arrow columns.

Pure Arrow compute (no per-row Python): for each leaf of the schema's context,
the event's value, else the batch context's; `context.sessionId` /
`context.sessionStart` fill `session.id` / `.start`; a section (or the whole
context) with no value left is null.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Input-only aliases, by the schema path they stand in for.
ALIASES = {("session", "id"): "sessionId", ("session", "start"): "sessionStart"}


def _child(parent: pa.Array | None, name: str) -> pa.Array | None:
    """A struct column's field, or None when there is no such column or field."""
    if parent is None or parent.type.get_field_index(name) < 0:
        return None
    return pc.struct_field(parent, [name])


def _leaf(event, batch, path: tuple[str, ...], roots, f: pa.Field, n: int) -> pa.Array:
    """The leaf's value: the event's, its alias in the event, the batch's, its alias there."""
    alias = ALIASES.get(path)
    candidates = [
        _child(event, f.name),
        _child(roots[0], alias) if alias else None,
        _child(batch, f.name),
        _child(roots[1], alias) if alias else None,
    ]
    present = [c.cast(f.type) for c in candidates if c is not None]
    if not present:
        return pa.nulls(n, f.type)
    return present[0] if len(present) == 1 else pc.coalesce(*present)


def _merge(
    event, batch, struct_type: pa.StructType, path: tuple[str, ...], roots, overrides, n: int
):
    children, valid = [], None
    for f in struct_type:
        here = (*path, f.name)
        if here in overrides:
            child = overrides[here]
        elif pa.types.is_struct(f.type):
            child = _merge(
                _child(event, f.name), _child(batch, f.name), f.type, here, roots, overrides, n
            )
        else:
            child = _leaf(event, batch, here, roots, f, n)
        children.append(child)
        valid = pc.is_valid(child) if valid is None else pc.or_(valid, pc.is_valid(child))
    return pa.StructArray.from_arrays(children, fields=list(struct_type), mask=pc.invert(valid))


def merge_context(
    event_context: pa.Array,
    batch_context: pa.Array | None,
    context_type: pa.StructType,
    overrides: dict[tuple[str, ...], pa.Array] | None = None,
) -> pa.StructArray:
    """The merged context column, of exactly `context_type`.

    `event_context` / `batch_context` (None: no event has one) are struct columns
    holding (some of) the context's fields plus the aliases; `overrides` replaces whole leaves
    (e.g. `{("ip",): final_ips}`).
    """
    event = _array(event_context)
    batch = None if batch_context is None else _array(batch_context)
    fixed = {path: _array(values) for path, values in (overrides or {}).items()}
    return _merge(event, batch, context_type, (), (event, batch), fixed, len(event))


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
