"""Text -> records: a file's blocks split into record chunks, and what cannot be records.

A JSONL/NDJSON file gives one record per non-blank line; a `.json` file is one
record (a big array is split into parts). Rejected here, as `Rejected` (failed rows
to be): a record that is not valid UTF-8 (`invalid_json`), a record over
`MAX_RECORD_BYTES` or a `.json` file over `MAX_DOCUMENT_BYTES` (`too_large`), and a
file that cannot be read to its end (`invalid_file`: its complete lines before the
damage are kept). A UTF-8 byte order mark at the start of a file is skipped.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.io.gzip_blocks import DamagedFileError
from eventpipe.schemas.failures import INVALID_FILE, INVALID_JSON, TOO_LARGE
from eventpipe.schemas.records import RECORDS_SCHEMA

# Measured with DuckDB's 512 MB per stage: a 16 MB batch passes every stage, 31 MB does
# not, and a 13 MB envelope of a batch does not parse; 8 MiB leaves a margin. (A record
# of millions of tiny values can still be too much: parse then rejects it alone.)
MAX_RECORD_BYTES = 8 * 2**20
"""A record (a line, a `.json` file that is not an array, one event of an array) over
this is rejected (`too_large`)."""
MAX_DOCUMENT_BYTES = 128 * 2**20
"""A `.json` file is read whole (an array is split into parts of about a chunk): over
this it is rejected (`too_large`); JSONL has no file size limit."""
SOLO_BYTES = 2**20  # a record this big is parsed in a chunk of its own
RAW_PREFIX_BYTES = 64 * 1024  # what a failed row keeps of a record over MAX_RECORD_BYTES
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Rejected:
    """Records of one file that the reader rejects: each becomes one failed row."""

    reason: str
    lines: list[int]
    messages: list[str]
    raws: list[str]
    indexes: list[int | None] | None = None  # position of a rejected event in its array


def _raw_text(data: bytes | memoryview) -> str:
    """A rejected record's text for the failed table: invalid UTF-8 bytes as `\\xNN`,
    only the first RAW_PREFIX_BYTES of a record over MAX_RECORD_BYTES."""
    if len(data) > MAX_RECORD_BYTES:
        data = data[:RAW_PREFIX_BYTES]
    return bytes(data).rstrip(b"\r").decode("utf-8", errors="backslashreplace")


def _too_large(line: int, size: int, head: bytes | memoryview, what: str = "record") -> Rejected:
    return Rejected(
        TOO_LARGE,
        [line],
        [
            f"the {what} is {size:,} bytes, over the limit of {MAX_RECORD_BYTES:,} bytes "
            f"(raw holds its first {RAW_PREFIX_BYTES:,} bytes)"
        ],
        [_raw_text(head[:RAW_PREFIX_BYTES])],
    )


def _text(data: bytes | memoryview) -> pa.Array | None:
    """`data` as one Arrow string, validated in place (no copy); None if not valid UTF-8."""
    try:
        return _as_array(data, pa.string())
    except pa.ArrowInvalid:
        return None


_UTF8_WINDOW = 16 * 1024


def _bad_utf8(
    view: memoryview, newlines: np.ndarray, lines_before: int, skip: np.ndarray
) -> tuple[np.ndarray, Rejected]:
    """Which lines of `view` (split at `newlines`) are not valid UTF-8, and their
    rejection (`invalid_json`), but for the lines `skip` marks (rejected already).

    Only text that failed Arrow's validation comes here; it is decoded in windows of
    16 KiB from one bad line to the next: the Python work is per bad line, not per line.
    """
    bad = np.zeros(len(newlines) + 1, dtype=bool)
    lines, messages, raws = [], [], []
    pos = 0
    while pos < len(view):
        try:  # in windows: the error copies what it was decoding
            final = pos + _UTF8_WINDOW >= len(view)
            pos += codecs.utf_8_decode(view[pos : pos + _UTF8_WINDOW], "strict", final)[1]
        except UnicodeDecodeError as exc:
            at = pos + exc.start
            k = int(np.searchsorted(newlines, at))  # the line's index in the block
            start = int(newlines[k - 1]) + 1 if k else 0
            end = int(newlines[k]) if k < len(newlines) else len(view)
            pos, bad[k] = end + 1, True
            if skip[k]:
                continue
            lines.append(lines_before + 1 + k)
            messages.append(
                f"the record is not valid UTF-8 ({exc.reason}: byte 0x{view[at]:02x} at byte "
                f"{at - start:,} of the record); raw shows its invalid bytes as \\xNN"
            )
            raws.append(_raw_text(view[start:end]))
    return bad, Rejected(INVALID_JSON, lines, messages, raws)


def _as_array(data: bytes | memoryview, kind: pa.DataType) -> pa.Array:
    """`data` as a one-element Arrow array of `kind` (binary or string), without a copy."""
    if len(data) >= 2**31:
        raise ValueError(
            f"a block of {len(data):,} bytes: lines and --chunk-mb must stay under 2 GB"
        )
    offsets = pa.array([0, len(data)], pa.int32()).buffers()[1]
    one = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data)])
    return one if kind == pa.binary() else one.cast(kind)


_WHITESPACE = pa.array(["", " ", "\t", "\r", "\x0b", "\x0c"])  # what bytes.strip() removes


def _line_records(
    path: str, data: bytes | memoryview, lines_before: int
) -> tuple[list[pa.Table | Rejected], int]:
    """The non-blank lines of `data` (whole lines) as record chunks and rejections, and
    how many lines `data` holds.

    Vectorised: one UTF-8 validation and one split per block; only lines that start
    with whitespace (rare) are looked at one by one to tell the blank ones, and only
    a block that is not valid UTF-8 is searched for its bad lines. A line over the size
    limit is `too_large`, whatever it holds.
    """
    out: list[pa.Table | Rejected] = []
    text = _text(data)
    valid = text is not None
    lines = pc.list_flatten(pc.split_pattern(text if valid else _as_array(data, pa.binary()), "\n"))
    sizes = pc.binary_length(lines).to_numpy(zero_copy_only=False)
    rejected = sizes > MAX_RECORD_BYTES
    for i in np.flatnonzero(rejected):
        line = lines[int(i)].as_py()
        head = (line.encode() if valid else line)[:RAW_PREFIX_BYTES]
        out.append(_too_large(lines_before + 1 + int(i), int(sizes[i]), head))
    if not valid:
        view = memoryview(data)
        newlines = np.flatnonzero(np.frombuffer(view, np.uint8) == 10)
        bad, not_utf8 = _bad_utf8(view, newlines, lines_before, rejected)
        if not_utf8.lines:
            out.append(not_utf8)
        rejected |= bad
    if rejected.any():  # blanked: not records
        lines = pc.if_else(pa.array(rejected), pa.scalar(b"" if not valid else ""), lines)
    if not valid:
        lines = lines.cast(pa.string())
    keep = pc.invert(pc.is_in(pc.utf8_slice_codeunits(lines, 0, 1), _WHITESPACE))
    keep = keep.to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(~keep):
        keep[i] = bool(lines[int(i)].as_py().encode().strip())
    texts = lines if keep.all() else lines.filter(keep)
    if pc.any(pc.ends_with(texts, "\r")).as_py():
        texts = pc.utf8_rtrim(texts, characters="\r")
    n = len(texts)
    numbers = np.arange(lines_before + 1, lines_before + 1 + len(lines), dtype=np.int64)[keep]
    columns = [pa.repeat(pa.scalar(path), n), numbers, np.zeros(n, dtype=np.int32), texts]
    table = pa.table(columns, schema=RECORDS_SCHEMA)
    solo = sizes[keep] > SOLO_BYTES
    if solo.any():  # big records each in a chunk of their own: DuckDB's memory stays bounded
        out.extend(table.slice(int(i), 1) for i in np.flatnonzero(solo))
        table = table.filter(pa.array(~solo))
    if table.num_rows:
        out.append(table)
    return out, len(lines)


def _with_last(blocks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """(block, whether it is the last); a block read before a read error is still given."""
    block = next(blocks, None)
    while block is not None:
        try:
            following = next(blocks, None)
        except (DamagedFileError, OSError):
            yield block, False
            raise
        yield block, following is None
        block = following


def line_chunks(
    path: str, blocks: Iterator[bytes], lines_before: int = 0
) -> Iterator[pa.Table | Rejected]:
    """The records of a JSONL file, block by block; a line never spans two chunks.

    `lines_before`: lines of the file before the first block (a byte range that is not
    the file's start, see io.byte_ranges: its first block is not the file's, so a byte
    order mark there is text)."""
    number = lines_before  # lines of the file before `pending`
    pending: bytes | memoryview = b""  # the start of a line whose end is not read yet
    skipped = 0  # bytes of an over-long line read past `pending` (its first bytes)
    try:
        for i, (block, last) in enumerate(_with_last(blocks)):
            if i == 0 and not lines_before and block.startswith(BOM):
                block = block[len(BOM) :]
            if skipped:  # inside a line over the limit: find its end
                cut = block.find(b"\n")
                if cut < 0 and not last:
                    skipped += len(block)
                    continue
                cut = len(block) if cut < 0 else cut
                yield _too_large(number + 1, len(pending) + skipped + cut, pending)
                number, pending, skipped = number + 1, b"", 0
                block = block[cut + 1 :]
            data = b"".join((pending, block)) if pending else block
            cut = len(data) if last else data.rfind(b"\n")
            if cut < 0:
                pending = data
                if len(pending) > MAX_RECORD_BYTES:  # keep its start, drop the rest
                    pending, skipped = pending[:RAW_PREFIX_BYTES], len(pending) - RAW_PREFIX_BYTES
                continue
            records, lines = _line_records(path, memoryview(data)[:cut], number)
            yield from records
            number += lines
            pending = memoryview(data)[cut + 1 :]
    except (DamagedFileError, OSError) as exc:
        kept = (
            f"its lines 1-{number:,} are read, line {number + 1:,} (raw: what was read of it) "
            "and the rest are not"
            if number or pending
            else "nothing of it is read"
        )
        yield Rejected(INVALID_FILE, [number + 1], [f"{exc}; {kept}"], [_raw_text(pending)])


def _parts(document: list, first: int, step: int, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(position, JSON array text) of consecutive parts of `document`, each under
    `limit`; (position, None) for a single event over MAX_RECORD_BYTES."""
    for start in range(first, first + len(document), step):
        part = document[start - first : start - first + step]
        text = orjson.dumps(part)
        if len(part) == 1 and len(text) > MAX_RECORD_BYTES:
            yield start, None
        elif len(text) <= limit or len(part) == 1:
            yield start, text
        else:
            yield from _parts(part, start, max(1, len(part) // 2), limit)


_ARRAY = re.compile(rb"\s*\[")


def _document_records(path: str, data: bytes, chunk_bytes: int) -> Iterator[pa.Table | Rejected]:
    """A whole-file JSON document as one record; a JSON array over `chunk_bytes` split.

    A part is a JSON array of consecutive events of about `chunk_bytes`, re-encoded
    by orjson, whose `first_index` keeps each event's position in the document; an
    event over MAX_RECORD_BYTES is rejected. Anything else (an object, invalid JSON)
    stays one record, to be judged as such, unless it is over MAX_RECORD_BYTES.
    """
    text = _text(data)
    array = _ARRAY.match(data) is not None
    if len(data) > MAX_RECORD_BYTES and (not array or text is None):
        yield _too_large(1, len(data), data)
        return
    if text is None:
        yield _bad_utf8(memoryview(data), np.array([], int), 0, np.zeros(1, bool))[1]
        return
    if len(data) > chunk_bytes:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, list) and len(document) > 1:
            step = max(1, len(document) * chunk_bytes // len(data))
            limit = max(chunk_bytes, MAX_RECORD_BYTES)
            for first, part in _parts(document, 0, step, limit):
                if part is None:
                    event = orjson.dumps(document[first])
                    rejected = _too_large(1, len(event), event, f"event at position {first:,}")
                    yield dataclasses.replace(rejected, indexes=[first])
                else:
                    yield _chunk(path, [1], [part.decode()], first)
            return
        if len(data) > MAX_RECORD_BYTES:  # an array of one event, or not valid JSON
            yield _too_large(1, len(data), data)
            return
    yield pa.table([pa.array([path]), [1], pa.array([0], pa.int32()), text], schema=RECORDS_SCHEMA)


def _chunk(source: str, lines: list[int], texts: list[str], first: int = 0) -> pa.Table:
    n = len(texts)
    return pa.table([[source] * n, lines, [first] * n, texts], schema=RECORDS_SCHEMA)


def document_chunks(
    path: str, blocks: Iterator[bytes], chunk_bytes: int
) -> Iterator[pa.Table | Rejected]:
    """The records of a `.json` file, read whole up to MAX_DOCUMENT_BYTES."""
    parts: list[bytes] = []
    size = 0
    try:
        for block in blocks:
            parts.append(block)
            size += len(block)
            if size > MAX_DOCUMENT_BYTES:
                yield Rejected(
                    TOO_LARGE,
                    [1],
                    [
                        f"the .json file is over the limit of {MAX_DOCUMENT_BYTES:,} bytes (read "
                        f"whole); write it as JSONL (raw holds its first {RAW_PREFIX_BYTES:,} bytes)"
                    ],
                    [_raw_text(parts[0][:RAW_PREFIX_BYTES])],
                )
                return
    except (DamagedFileError, OSError) as exc:
        head = b"".join(parts)
        yield Rejected(
            INVALID_FILE,
            [1],
            [f"{exc}; the document ({len(head):,} bytes read) is not imported"],
            [_raw_text(head)],
        )
        return
    data = b"".join(parts)
    yield from _document_records(
        path, data[len(BOM) :] if data.startswith(BOM) else data, chunk_bytes
    )
