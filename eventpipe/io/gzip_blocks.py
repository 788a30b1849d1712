"""A file's text in blocks: plain, or gzip decompressed with every damage detected.

Beam's own gzip reader returns what it could decompress of a truncated file and
stops without a word; here a file that is not gzip, is corrupt (zlib checks each
member's CRC-32 and length) or ends inside a member raises DamagedFileError, saying
at which byte reading stopped, after giving the text decompressed before it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import BinaryIO

READ_BYTES = 1 << 20  # compressed bytes read at a time
_GZIP = 16 + zlib.MAX_WBITS


class DamagedFileError(Exception):
    """A file whose bytes cannot be read to their end (the message says where)."""


def read_blocks(handle: BinaryIO, size: int, gzip: bool) -> Iterator[bytes]:
    """The text of an open file in blocks of at least `size` bytes (the last may be smaller)."""
    if not gzip:
        while block := handle.read(size):
            yield block
        return
    yield from _gunzip(handle, size)


def _gunzip(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """Decompress gzip members one after the other (as `gzip` does), `size` bytes of text
    at a time at most per step: a small file that inflates hugely never fills memory."""
    inflate = zlib.decompressobj(_GZIP)
    in_member = False  # bytes of the current member were read, its end not yet
    members = 0
    offset = 0  # compressed bytes consumed
    text = 0  # bytes of text produced
    pending = b""
    out: list[bytes] = []
    held = 0
    while True:
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
        try:
            piece = inflate.decompress(pending, size)
        except zlib.error as exc:
            if out:
                yield b"".join(out)
            what = "not a gzip file" if offset == 0 else "corrupt gzip data"
            raise DamagedFileError(
                f"{what} ({exc}) in the compressed bytes from byte {offset:,}; reading "
                f"stopped after {text:,} bytes of text"
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
    if in_member:
        raise DamagedFileError(
            f"truncated gzip file: the compressed data ends at byte {offset:,}, inside a "
            f"gzip member; reading stopped after {text:,} bytes of text"
        )
