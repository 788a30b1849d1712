"""Output files: buffered, optionally gzipped, appearing atomically when complete."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

_FLUSH_BYTES = 1 << 20


class Sink:
    """Writes bytes to `path` through a 1 MiB buffer; gzip (level 1, mtime 0) for `.gz`.

    The data goes to `path.tmp` and is renamed to `path` on a clean close, so a
    reader never sees a half-written file. gzip output is byte-identical for the
    same input (no timestamp, no file name in the header).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".tmp")
        self._raw = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()
        self._out: BinaryIO = self._raw
        if path.name.endswith(".gz"):
            self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw,
                                      compresslevel=1, mtime=0)  # fmt: skip
        self._buf: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        """Append `data`."""
        self._buf.append(data)
        self._size += len(data)
        if self._size >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        self._out.write(b"".join(self._buf))
        self._buf.clear()
        self._size = 0

    def close(self) -> None:
        """Flush, close and move the file into place."""
        self._flush()
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Close and delete the partial file."""
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if exc_type is None:
            self.close()
        else:
            self.abort()
