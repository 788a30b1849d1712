"""Byte ranges of an uncompressed line file, so that several workers share one big file.

As Beam's `ReadFromText` splits a text file: the file is cut into ranges of bytes
`[start, end)`; a range owns the lines that *start* inside it, so it begins at the
first line boundary at or after `start` and ends with the line that crosses `end`
(read past `end` to that line's newline). Every line is read exactly once, by one
range; a range inside one long line owns nothing.

Line numbers stay exact: the first line of a range is line
`1 + newlines before start (+1 when start is inside a line)`, and the newlines before
`start` are those counted in the preceding ranges (`count_newlines`: a pass over the
bytes, ~1% of an import's CPU). A gzip file cannot be split (its bytes can only be
inflated from the start): it is read whole, by one worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAX_RANGE_CHUNKS = 4  # a range is 1-4 chunks: big enough that its partial last chunk is rare
SPREAD = 16  # aim for this many ranges of a run's bytes, for the workers to share
MAX_RANGES = 1024  # per file, whatever the chunk size (tiny --chunk-mb values)
OVERSHOOT = 64 * 1024  # read this much past a range's end first: the crossing line, usually


@dataclass(frozen=True)
class ByteRange:
    """What one reader reads: the lines starting in bytes [start, end) of a file (`end`
    None: to the end of the file, however long it has grown since it was listed).

    `index` numbers the ranges of a file from 0 (0 is the file's start)."""

    path: str
    start: int = 0
    end: int | None = None
    index: int = 0

    @property
    def whole(self) -> bool:
        """Whether this is the whole file (read as before: gzip, .json, small files)."""
        return self.start == 0 and self.end is None


def range_bytes(total: int, chunk_bytes: int) -> int:
    """The size of the ranges for a run of `total` bytes: a whole number of chunks (1 to
    MAX_RANGE_CHUNKS) giving about SPREAD ranges, so each worker gets several."""
    chunks = total // (chunk_bytes * SPREAD)
    return chunk_bytes * max(1, min(MAX_RANGE_CHUNKS, chunks))


def split_file(path: str, size: int, step: int) -> list[ByteRange]:
    """The ranges of a file of `size` bytes, each `step` bytes but at most MAX_RANGES
    (one whole range when the file is not bigger than `step`)."""
    step = max(step, -(-size // MAX_RANGES))
    if size <= step:
        return [ByteRange(path)]
    starts = list(range(0, size, step))
    ends: list[int | None] = [*starts[1:], None]  # the last range reads to the end
    return [ByteRange(path, s, e, i) for i, (s, e) in enumerate(zip(starts, ends, strict=True))]


def count_newlines(handle: BinaryIO, start: int, end: int, block: int = 1 << 24) -> int:
    """How many `\\n` bytes [start, end) of the file hold."""
    handle.seek(start)
    count, left = 0, end - start
    while left > 0 and (data := handle.read(min(block, left))):
        count += data.count(b"\n")
        left -= len(data)
    return count


def _first_line_start(handle: BinaryIO, start: int, block: int) -> int | None:
    """The offset of the first line that starts at or after `start` (None: at the end
    of the file)."""
    if start == 0:
        return 0
    handle.seek(start - 1)
    at = start - 1
    while data := handle.read(block):
        cut = data.find(b"\n")
        if cut >= 0:
            return at + cut + 1
        at += len(data)
    return None


def range_blocks(handle: BinaryIO, owned: ByteRange, block: int) -> tuple[int, Iterator[bytes]]:
    """(offset of the range's first line, the blocks of text of the lines it owns).

    The blocks end with the newline of the line that crosses `owned.end` (or at the end
    of the file); a range that no line starts in gives no block.
    """
    first = _first_line_start(handle, owned.start, block)
    if first is None or (owned.end is not None and first >= owned.end):
        return owned.start, iter(())
    return first, _blocks_from(handle, first, owned.end, block)


def _blocks_from(handle: BinaryIO, first: int, end: int | None, block: int) -> Iterator[bytes]:
    handle.seek(first)
    at = first  # the offset of the next byte to read
    data = handle.read(block if end is None else min(block, end - first + OVERSHOOT))
    while data:
        if end is not None and at + len(data) >= end:  # the crossing line ends at a newline
            cut = data.find(b"\n", max(end - 1 - at, 0))
            if cut >= 0:
                yield data[: cut + 1]
                return
        yield data
        at += len(data)
        data = handle.read(block)
