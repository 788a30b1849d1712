"""A file's text in blocks: plain, or gzip decompressed with every damage detected.

Beam's own gzip reader returns what it could decompress of a truncated file and
stops without a word. Here a gzip file is checked whole first (decompressed and
thrown away, ~3 ms per MB of text), because corrupt deflate data can decompress to
wrong text before zlib notices (at the latest, at the member's CRC-32): only whole
members that passed the check give text. A file that is not gzip, is corrupt or ends
inside a member (truncated: its text up to the cut is still right, and is given)
raises DamagedFileError, saying at which byte reading stopped.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

READ_BYTES = 1 << 20  # compressed bytes read at a time
_GZIP = 16 + zlib.MAX_WBITS


class DamagedFileError(Exception):
    """A file whose bytes cannot be read to their end (the message says where)."""

    def __init__(self, message: str, truncated: bool = False, trusted: int = 0) -> None:
        super().__init__(message)
        self.truncated = truncated  # the data ends early; everything before is right
        self.trusted = trusted  # compressed bytes of the members read whole and checked


def read_blocks(open_file: Callable[[], BinaryIO], size: int, gzip: bool) -> Iterator[bytes]:
    """The text of a file in blocks of at least `size` bytes (the last may be smaller).

    `open_file` opens the file from its start (a gzip file is read twice: checked, then used).
    """
    if not gzip:
        with open_file() as handle:
            while block := handle.read(size):
                yield block
        return
    damage = None
    with open_file() as handle:
        try:
            for _ in _gunzip(handle, size):
                pass
        except DamagedFileError as exc:
            damage = exc
    with open_file() as handle:
        if damage is None or damage.truncated:
            yield from _gunzip(handle, size)
            return
        yield from _gunzip(handle, size, stop=damage.trusted)
    raise damage


def _gunzip(handle: BinaryIO, size: int, stop: int | None = None) -> Iterator[bytes]:
    """Decompress gzip members one after the other (as `gzip` does), at most `size`
    bytes of text per step (a small file that inflates hugely never fills memory);
    with `stop`, only the members that end by that compressed offset."""
    inflate = zlib.decompressobj(_GZIP)
    in_member = False  # bytes of the current member were read, its end not yet
    members = 0
    offset = member_start = 0  # compressed bytes consumed; where the current member starts
    text = 0  # bytes of text produced
    pending = b""
    out: list[bytes] = []
    held = 0
    while stop is None or offset < stop:
        if not pending:
            pending = handle.read(READ_BYTES)
            if not pending:
                break
        if members and not in_member:  # zero padding after a member, as gzip allows
            stripped = pending.lstrip(b"\0")
            offset += len(pending) - len(stripped)
            pending = stripped
            if not pending:
                continue
        if not in_member:
            member_start = offset
        before = inflate.copy()
        try:
            piece = inflate.decompress(pending, size)
        except zlib.error as exc:
            start, end = _damage_at(before, pending)
            header = members == 0 and start == 0 and "header" in str(exc)
            raise DamagedFileError(
                f"{'not a gzip file' if header else 'corrupt gzip data'} ({exc}) in bytes "
                f"{offset + start:,}-{offset + end:,} of the compressed file; the text of "
                f"that gzip member cannot be trusted",
                trusted=member_start,
            ) from None
        in_member = True
        if inflate.eof:
            rest = inflate.unused_data
            offset += len(pending) - len(rest)
            pending = rest
            inflate = zlib.decompressobj(_GZIP)
            in_member = False
            members += 1
        else:
            offset += len(pending) - len(inflate.unconsumed_tail)
            pending = inflate.unconsumed_tail
        if piece:
            out.append(piece)
            held += len(piece)
            text += len(piece)
        if held >= size:
            yield b"".join(out)
            out, held = [], 0
    if out:
        yield b"".join(out)
    if in_member and stop is None:
        raise DamagedFileError(
            f"truncated gzip file: the compressed data ends at byte {offset:,}, inside a "
            f"gzip member; reading stopped after {text:,} bytes of text",
            truncated=True,
        )


def _damage_at(inflate: zlib._Decompress, data: bytes, step: int = 4096) -> tuple[int, int]:
    """Replay `data` in small steps: where in `data` the step that fails starts and ends."""
    for at in range(0, len(data), step):
        try:
            inflate.decompress(data[at : at + step])
        except zlib.error:
            return at, min(at + step, len(data))
    return len(data), len(data)
