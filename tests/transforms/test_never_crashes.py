"""Property: random and mutated records never crash the stages and always reconcile."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_support import Stages, make_event

STAGES = Stages(default_connection=1)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "type",
    "event",
    "anonymousId",
    "userId",
    "messageId",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "receivedAt",
    "properties",
    "traits",
    "context",
    "groupId",
    "previousId",
    "category",
    "name",
    "connectionId",
    "batch",
    "body",
    "ip",
]
CONTEXT_PATHS = [
    ("screen", "width"),
    ("screen", "density"),
    ("session", "id"),
    ("page", "url"),
    ("ip",),
    ("sessionId",),
]


@st.composite
def mutated_events(draw) -> dict:
    event = make_event(context={"page": {"url": "https://x.example"}, "screen": {"width": 10}})
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()):
            event[key] = draw(json_values)
        else:
            event.pop(key, None)
    if draw(st.booleans()):
        path = draw(st.sampled_from(CONTEXT_PATHS))
        ctx = event.setdefault("context", {}) if isinstance(event.get("context"), dict) else {}
        node = ctx
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part), dict) else {}
        node[path[-1]] = draw(json_values)
    return event


@st.composite
def records(draw) -> str:
    kind = draw(st.sampled_from(["event", "batch", "array", "envelope", "value", "text"]))
    if kind == "value":
        return json.dumps(draw(json_values))
    if kind == "text":
        return draw(st.text(max_size=40))
    events = draw(st.lists(mutated_events() | json_values, min_size=0, max_size=4))
    body: object = {
        "event": events[0] if events else {},
        "batch": {"batch": events},
        "array": events,
    }.get(kind, {"batch": events})
    if kind == "envelope":
        body = {
            "receivedAt": draw(st.sampled_from(["2026-01-01T00:00:00Z", "x", None])),
            "ip": draw(st.sampled_from(["1.2.3.4", "::1", "no", None])),
            "body": body,
        }
    text = json.dumps(body)
    if draw(st.integers(0, 9)) == 0:  # truncate some records
        text = text[: draw(st.integers(0, len(text)))]
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=12))
def test_random_records_reconcile(texts):
    texts = [t for t in texts if t.strip() and "\n" not in t] or ["{}"]
    events, failed, read = STAGES.run_tables(texts)
    assert read == events.num_rows + failed.num_rows
    # Every failure names a reason and says why.
    for row in failed.to_pylist():
        assert row["reason"] and row["message"] and row["raw"] is not None


# Bytes that make files hard to read: invalid UTF-8, a BOM, CR, NUL, and JSON pieces.
PIECES = [
    b"\n",
    b"\r\n",
    b" ",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc0\xaf",
    b"\xe2\x82",
    b"\x00",
    b"{}",
    b"[]",
    b'"\xc3\xa9"',
]


@st.composite
def file_bytes(draw) -> bytes:
    parts = draw(
        st.lists(
            st.sampled_from(PIECES) | st.binary(max_size=6) | records().map(str.encode), max_size=20
        )
    )
    return b"".join(parts)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=file_bytes(),
    gz=st.sampled_from(["no", "whole", "cut"]),
    chunk_bytes=st.sampled_from([16, 64, 1 << 20]),
)
def test_random_files_account_for_every_line(tmp_path, data, gz, chunk_bytes):
    """Every non-blank line of a file becomes one record or one failed row, and the
    records' text is the line's, unchanged; a damaged file is one failed row more."""
    import gzip

    import pyarrow as pa

    from eventpipe.io import raw_files, raw_records

    path = tmp_path / ("f.jsonl.gz" if gz != "no" else "f.jsonl")
    packed = gzip.compress(data) if gz != "no" else data
    path.write_bytes(packed[: len(packed) // 2] if gz == "cut" else packed)
    records, rejected, damaged = {}, {}, 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(raw_records, "MAX_RECORD_BYTES", 40)
        for item in raw_files.read_record_chunks(str(path), chunk_bytes):
            if isinstance(item, pa.Table):
                records.update(zip(item["line"].to_pylist(), item["raw"].to_pylist(), strict=True))
                parsed = STAGES.run_tables(item["raw"].to_pylist())
                assert parsed[2] == parsed[0].num_rows + parsed[1].num_rows
            elif item.reason == "invalid_file":
                damaged += 1
            else:
                rejected.update(dict.fromkeys(item.lines, item.reason))
    assert not set(records) & set(rejected)
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    expected = {i + 1: line.rstrip(b"\r") for i, line in enumerate(lines) if line.strip()}
    if gz == "cut" and damaged:
        assert damaged == 1
        expected = {n: line for n, line in expected.items() if n in records or n in rejected}
    else:
        assert damaged == 0
    assert set(records) | set(rejected) == set(expected)
    for n, text in records.items():
        assert text.encode() == expected[n] and len(expected[n]) <= 40
    for n, reason in rejected.items():
        assert reason == ("too_large" if len(expected[n]) > 40 else "invalid_json")
