"""Byte ranges of a line file: every line read exactly once, with its exact line number."""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow as pa
import pytest

from eventpipe.io import raw_records
from eventpipe.io.byte_ranges import (
    MAX_RANGES,
    ByteRange,
    count_newlines,
    range_bytes,
    split_file,
)
from eventpipe.io.raw_files import (
    GZIP_NOTE_BYTES,
    plan_reads,
    read_record_chunks,
    unsplittable_input,
)
from eventpipe.io.raw_records import Rejected

LINES = [f'{{"n": {i}, "pad": "{"x" * (i * 7 % 23)}"}}' for i in range(40)]
CASES = {
    "lines": "\n".join(LINES) + "\n",
    "no final newline": "\n".join(LINES),
    "crlf": "\r\n".join(LINES) + "\r\n",
    "bom": "\ufeff" + "\n".join(LINES) + "\n",
    "blank lines": "\n\n" + "\n \n".join(LINES) + "\n\n\n",
    "one line": LINES[0],
    "empty": "",
    "only newlines": "\n\n\n",
    "a huge line": "\n".join([*LINES[:5], '{"big": "' + "y" * 900 + '"}', *LINES[5:]]) + "\n",
}


def expected(data: bytes) -> list[tuple[int, str]]:
    """(line number, record) of every non-blank line: the file read whole, independently."""
    text = data.decode("utf-8").removeprefix("\ufeff")
    return [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), 1) if line.strip()]


def read_ranges(path: Path, step: int, chunk_bytes: int) -> list[tuple[int, str]]:
    """Every range of the file read on its own, as the pipeline's readers do."""
    ranges = split_file(str(path), path.stat().st_size, step)
    rows: list[tuple[int, str]] = []
    newlines = 0  # the pipeline's side input: the newlines of the ranges before
    for unit in ranges:
        for item in read_record_chunks(unit, chunk_bytes, newlines):
            assert isinstance(item, pa.Table), item
            rows += zip(item["line"].to_pylist(), item["raw"].to_pylist(), strict=True)
        if unit.end is not None:
            with path.open("rb") as handle:
                newlines += count_newlines(handle, unit.start, unit.end)
    return rows


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("step", [1, 2, 3, 7, 50, 333, 10**6])
@pytest.mark.parametrize("chunk_bytes", [16, 4096])
def test_every_line_once_with_its_number(tmp_path, case, step, chunk_bytes):
    path = tmp_path / "f.jsonl"
    path.write_bytes(CASES[case].encode())
    assert read_ranges(path, step, chunk_bytes) == expected(path.read_bytes())


def test_a_range_inside_one_line_owns_nothing(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b'{"b": "' + b"z" * 100 + b'"}\n{"c": 3}\n')
    inside = ByteRange(str(path), 20, 40, 1)
    assert list(read_record_chunks(inside, 4096, 1)) == []


def test_a_line_starting_at_a_range_start_belongs_to_that_range(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3}\n')  # lines start at 0, 9, 18
    first, second = ByteRange(str(path), 0, 9, 0), ByteRange(str(path), 9, 18, 1)
    [a] = list(read_record_chunks(first, 4096, 0))
    [b] = list(read_record_chunks(second, 4096, 1))
    assert a["raw"].to_pylist() == ['{"a": 1}'] and a["line"].to_pylist() == [1]
    assert b["raw"].to_pylist() == ['{"b": 2}'] and b["line"].to_pylist() == [2]


def test_a_bom_is_only_skipped_at_the_start_of_the_file(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a": 1}\n\xef\xbb\xbf{"b": 2}\n')
    rows = read_ranges(path, 5, 4096)
    assert rows == [(1, '{"a": 1}'), (2, '\ufeff{"b": 2}')]  # not silently altered


def test_a_line_over_the_limit_is_rejected_once_at_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(raw_records, "MAX_RECORD_BYTES", 300)
    monkeypatch.setattr(raw_records, "RAW_PREFIX_BYTES", 20)
    path = tmp_path / "f.jsonl"
    path.write_bytes(("\n".join([*LINES[:3], "x" * 1000, *LINES[3:6]]) + "\n").encode())
    ranges = split_file(str(path), path.stat().st_size, 64)
    rejected: list[Rejected] = []
    lines: list[int] = []
    newlines = 0
    for unit in ranges:
        for item in read_record_chunks(unit, 128, newlines):
            if isinstance(item, Rejected):
                rejected.append(item)
            else:
                lines += item["line"].to_pylist()
        if unit.end is not None:
            with path.open("rb") as handle:
                newlines += count_newlines(handle, unit.start, unit.end)
    assert [(r.reason, r.lines) for r in rejected] == [("too_large", [4])]
    assert lines == [1, 2, 3, 5, 6, 7]


def test_only_uncompressed_line_files_of_known_size_are_split(tmp_path):
    files = [("a.jsonl", 100), ("b.jsonl.gz", 100), ("c.json", 100), ("d.ndjson", 30)]
    reads = plan_reads([*files, "e.jsonl"], chunk_bytes=40)
    assert [(r.path, r.start, r.end) for r in reads] == [
        ("a.jsonl", 0, 40),
        ("a.jsonl", 40, 80),
        ("a.jsonl", 80, None),
        ("b.jsonl.gz", 0, None),
        ("c.json", 0, None),
        ("d.ndjson", 0, None),
        ("e.jsonl", 0, None),  # no size: read whole
    ]


def test_ranges_are_whole_chunks_spread_over_the_input():
    chunk = 12 * 2**20
    assert range_bytes(0, chunk) == chunk
    assert range_bytes(200 * 10**6, chunk) == chunk  # ~16 ranges
    assert range_bytes(2 * 10**9, chunk) == 4 * chunk  # at most 4 chunks: ~40 ranges


def test_one_big_gzip_file_as_the_whole_input_is_named_in_the_log():
    big = GZIP_NOTE_BYTES
    note = unsplittable_input([("dump.jsonl.gz", big)])
    assert note is not None and "cannot be split" in note and "dump.jsonl.gz" in note
    assert unsplittable_input([("dump.jsonl.gz", big - 1)]) is None  # small: nothing to say
    assert unsplittable_input([("a.jsonl.gz", big), ("b.jsonl.gz", big)]) is None  # 2 workers
    assert unsplittable_input([("dump.jsonl", big * 10)]) is None  # split in ranges


def test_a_file_has_at_most_max_ranges():
    ranges = split_file("f.jsonl", 10**9, 100)
    assert len(ranges) <= MAX_RANGES and ranges[-1].end is None
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
