"""The JSON text of a struct column built with Arrow string kernels, byte for byte what
DuckDB's `json_strip_nulls(to_json(...))` writes, for the columns whose leaves are
strings, integers and booleans (None for any other: the caller lets DuckDB write them).

Used by seed 002's export for the wide `context` struct (`export.export_items`): no
Python per event, and no JSON parsing or DuckDB statement for it.
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

_SPECIAL = r'["\\\x00-\x1f]'
"""Characters a JSON string escapes."""
_CONTROL = r"[\x00-\x1f]"
"""Characters DuckDB escapes other than `"` and backslash: a page holding one is left to it."""


def escaped(array: pa.Array) -> pa.Array | None:
    """The strings of `array` escaped for a JSON string (without the quotes); None when
    one holds a control character."""
    if not pc.any(pc.match_substring_regex(array, _SPECIAL)).as_py():
        return array
    if pc.any(pc.match_substring_regex(array, _CONTROL)).as_py():
        return None
    return pc.replace_substring(pc.replace_substring(array, "\\", "\\\\"), '"', '\\"')


def json_strings(array: pa.Array) -> pa.Array | None:
    """Each string of `array` as a JSON string (null stays null); None when one holds a
    control character."""
    text = escaped(array)
    return None if text is None else pc.binary_join_element_wise('"', text, '"', "")


def plain(array: pa.StructArray) -> bool:
    """Whether no string of `array` (at any depth) needs an escape: checked in one pass."""
    leaves: list[pa.Array] = []
    pending = [array]
    while pending:
        struct = pending.pop()
        for i, field in enumerate(struct.type):
            if pa.types.is_struct(field.type):
                pending.append(struct.field(i))
            elif pa.types.is_string(field.type):
                leaves.append(struct.field(i))
    if not leaves:
        return True
    return not pc.any(pc.match_substring_regex(pa.chunked_array(leaves), _SPECIAL)).as_py()


def json_member(name: str, array: pa.Array, clean: bool = False) -> pa.Array | None:
    """`,"name":value` for each value of `array` (null for a null value); None for a type
    this module does not write. `clean`: its strings need no escape (`plain`)."""
    key = "," + orjson.dumps(name).decode() + ":"
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = array.cast(pa.string()) if clean else escaped(array.cast(pa.string()))
        return None if text is None else pc.binary_join_element_wise(key + '"', text, '"', "")
    if pa.types.is_integer(kind):
        value = array.cast(pa.string())
    elif pa.types.is_boolean(kind):
        value = pc.if_else(array, "true", "false")
    elif pa.types.is_struct(kind):
        value = json_objects(array, clean)
    else:
        return None
    return None if value is None else pc.binary_join_element_wise(key, value, "")


def json_objects(array: pa.StructArray, clean: bool | None = None) -> pa.Array | None:
    """The JSON object of each row of `array` without its null members (null for a null
    row), or None when a member has a type this module does not write. `clean`: whether
    its strings need no escape (None: find out, `plain`)."""
    clean = plain(array) if clean is None else clean
    members = []
    children = (
        array.flatten() if array.null_count else [array.field(i) for i in range(len(array.type))]
    )
    for field, child in zip(array.type, children, strict=True):  # null where `array` is
        if child.null_count == len(child):
            continue  # no member in any row
        member = json_member(field.name, child, clean)
        if member is None:
            return None
        members.append(member)
    if not members:
        body = pa.repeat(pa.scalar("{}"), len(array))
    else:  # ",m1,m2..." without the nulls, then "{m1,m2...}" (not a "skip" join: it
        # drops the rows where every member is null in pyarrow 25)
        joined = pc.binary_join_element_wise(
            *members, "", null_handling="replace", null_replacement=""
        )
        body = pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(joined, 1), "}", "")
    if not array.null_count:
        return body
    return pc.if_else(array.is_valid(), body, pa.scalar(None, pa.string()))
