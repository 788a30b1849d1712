"""JSON values no reader downstream can hold, found in an event's text.

DuckDB's reader accepts `nan`, `inf`, `Infinity`... in any case, numbers beyond a double
(`1e400`) and integers beyond 64 bits, and nests without limit; the stored JSON then
breaks the read API (non-finite numbers, depth) or is rounded by it (30-digit integers).
An event holding one is rejected (`invalid_value`) with the path of the value.

Vectorised: `suspects` (an Arrow regex) and a bracket count (`deep_sql`) are cheap tests
over every event; only the rare text they flag is walked in Python (`audit_json`, through
the DuckDB function `json_audit` of `duck.register_json_audit`).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.schemas.failures import INVALID_JSON, PROBLEM_TYPE

MAX_DEPTH = 64
"""The deepest nesting accepted by default (the event object is level 1)."""

# A value that may be a non-finite literal (nan, inf, infinity: any case, any sign).
NON_FINITE_REGEX = r"[:\[,]\s*[-+]?[nNiI][aAnN][nNfF]"
# That, or an integer that may not fit 64 bits (19+ digits), or a float that may not fit a
# double (an exponent of 3+ digits, or 19+ digits after the point). Over-matching only
# costs a walk.
SUSPECT_REGEX = (
    r"[:\[,]\s*(?:[-+]?[nNiI][aAnN][nNfF]|-?\d{19}|-?\d+(?:\.\d+)?[eE][-+]?\d{3}|-?\d+\.\d{19})"
)

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+')
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_INT_RANGE = (-(2**63), 2**64 - 1)


def deep_sql(text: str, max_depth: int = MAX_DEPTH) -> str:
    """SQL: whether the JSON `text` has more opening brackets than `max_depth` (then it may
    be nested too deep: `audit_json` tells)."""
    return (
        f"strlen({text}) - strlen(replace(replace({text}, '[', ''), '{{', '')) > {int(max_depth)}"
    )


def suspects(texts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Which JSON texts may hold a number `audit_json` rejects (no false negatives)."""
    return pc.match_substring_regex(texts, SUSPECT_REGEX)


def _literal_problem(token: str) -> str | None:
    low = token.lower()
    if low in ("true", "false", "null"):
        return None
    match = _NUMBER.fullmatch(token)
    if match is None:
        return f"is not a finite number ({token})"
    if match.group(1) is None and match.group(2) is None:
        if not _INT_RANGE[0] <= int(token) <= _INT_RANGE[1]:
            return "is an integer beyond 64 bits (JSON readers would round it)"
        return None
    value = float(token)
    if math.isinf(value) or (value == 0 and re.search(r"[1-9]", token.split("e")[0].split("E")[0])):
        return f"is a number outside the range of a double ({token[:40]})"
    return None


def _path(stack: list[list]) -> str:
    out = ""
    for kind, key in stack:
        if kind == "[":
            out += f"[{key}]"
        elif key is not None:
            out += ("." if out else "") + key
    return out


def audit_json(text: str, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(path, problem) of the first value of `text` (JSON DuckDB accepted) that is not
    finite, beyond a double or a 64-bit integer, or nested deeper than `max_depth`."""
    stack: list[list] = []  # [kind, key or index] per open container
    expect_key = False
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "{[":
            if len(stack) >= max_depth:
                top = _path(stack[:1]) or "the event"
                return top, f"is nested deeper than {max_depth} levels"
            stack.append([token, None if token == "{" else 0])
            expect_key = token == "{"
        elif token in "}]":
            stack.pop()
            expect_key = False
        elif token == ",":
            if stack and stack[-1][0] == "[":
                stack[-1][1] += 1
            expect_key = bool(stack) and stack[-1][0] == "{"
        elif token == ":":
            expect_key = False
        elif token[0] == '"':
            if expect_key:
                stack[-1][1] = json.loads(token)
        else:
            problem = _literal_problem(token)
            if problem is not None:
                return _path(stack), problem
    return None


def trailing_comma(text: str) -> bool:
    """Whether JSON `text` (that DuckDB accepted) has a comma before a closing bracket."""
    previous = ""
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "}]" and previous == ",":
            return True
        previous = token
    return False


def duplicate_keys(
    keys: pa.Array | pa.ChunkedArray, paths: list[str], whole: str
) -> pa.Array | None:
    """Problems (`invalid_json`, failures.PROBLEM_TYPE) of the rows where an object has a key
    twice, else None when no row has one.

    `keys` holds, per row, the key lists of the objects at `paths` (`json_leaves.object_keys`;
    NULL where there is no object). DuckDB reads the first of two equal keys and most JSON
    readers the last: which value counts is ambiguous, so such an object is rejected.
    Vectorised: every (object, key) pair becomes one integer, sorted; a repeat is a duplicate.
    """
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    objects = pc.list_flatten(keys)
    names = pc.list_flatten(objects)
    if len(names) < 2:
        return None
    owner = np.asarray(pc.list_parent_indices(objects), dtype=np.int64)
    codes = np.asarray(pc.dictionary_encode(names).indices, dtype=np.int64)
    pairs = np.sort(owner << 32 | codes)
    repeated = pairs[1:][pairs[1:] == pairs[:-1]]
    if not len(repeated):
        return None
    object_row = np.asarray(pc.list_parent_indices(keys), dtype=np.int64)
    offsets = np.asarray(keys.offsets, dtype=np.int64)
    found: dict[int, dict[str, str]] = {}
    for obj in np.unique(repeated >> 32):  # in row, then path order
        row = int(object_row[obj])
        if row in found:
            continue
        path = paths[int(obj - offsets[row])]
        listed = objects[int(obj)].as_py()
        name = next(k for i, k in enumerate(listed) if k in listed[:i])
        where = f"object '{path}'" if path else whole
        found[row] = {
            "reason": INVALID_JSON,
            "field": f"{path}.{name}" if path else name,
            "message": f"{where} has the key '{name}' more than once",
        }
    return pa.array([found.get(row) for row in range(len(keys))], PROBLEM_TYPE)
