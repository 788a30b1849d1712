"""A compressed row store: a partition's rows in small zstd blocks, for reading scattered rows.

A Parquet file decodes a whole row group (16k rows of every column) to return one row.
The row store holds the same rows in blocks of BLOCK_ROWS rows, each an Arrow IPC
record-batch message compressed with zstd and a dictionary trained on the partition's
own blocks: reading a row decompresses one small block. The blocks sit in one Arrow IPC
file (`block`: binary, one row per block), read memory-mapped; the zstd dictionary and
the block size are in its schema metadata. Sizes and read times: benchmarks/README.md.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import zstandard

BLOCK_ROWS = 32
ZSTD_LEVEL = 3
DICTIONARY_BYTES = 112_640
DICTIONARY_SAMPLES = 1_000
BLOCKS_PER_BATCH = 4_096
_BLOCK_SCHEMA = pa.schema([pa.field("block", pa.binary())])
_DICTIONARY_KEY = b"eventpipe.zstd_dictionary"
_BLOCK_ROWS_KEY = b"eventpipe.block_rows"


def _map(path: str) -> pa.Buffer:
    """A file memory-mapped for random reads (MADV_RANDOM: no read-ahead of the device's
    window, 8 MB here, on each page fault), as an Arrow buffer."""
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    mapped.madvise(mmap.MADV_RANDOM)
    return pa.py_buffer(mapped)


def open_mapped(path: str) -> pa.ipc.RecordBatchFileReader:
    """An Arrow IPC file, memory-mapped for random reads."""
    return pa.ipc.open_file(pa.BufferReader(_map(path)))


def _block_bounds(reader: pa.ipc.RecordBatchFileReader, base: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) byte positions in the file of every block of a row store read from
    its mapping at address `base`."""
    begins, ends = [], []
    for i in range(reader.num_record_batches):
        column = reader.get_batch(i).column(0)
        _, offsets, data = column.buffers()
        found = np.frombuffer(offsets, np.int32)[column.offset : column.offset + len(column) + 1]
        start = data.address - base
        begins.append(start + found[:-1].astype(np.int64))
        ends.append(start + found[1:].astype(np.int64))
    if not begins:
        return np.array([], np.int64), np.array([], np.int64)
    return np.concatenate(begins), np.concatenate(ends)


def write_row_store(table: pa.Table, path: Path) -> None:
    """Write the rows of `table` (in the order they are to be numbered) to `path`
    (atomically: written aside, then renamed)."""
    table = table.combine_chunks()
    messages = [b.serialize() for b in table.to_batches(max_chunksize=BLOCK_ROWS)]
    step = max(1, len(messages) // DICTIONARY_SAMPLES)
    samples = [m.to_pybytes() for m in messages[::step]]
    dictionary = None
    if len(samples) >= 8:  # zstd needs a few samples to train a dictionary
        try:
            dictionary = zstandard.train_dictionary(
                DICTIONARY_BYTES, samples, level=ZSTD_LEVEL, k=1024, d=8
            )
        except zstandard.ZstdError:  # too little or too uniform data: none
            dictionary = None
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=dictionary)
    blocks = [compressor.compress(m) for m in messages]
    metadata = {
        _BLOCK_ROWS_KEY: str(BLOCK_ROWS).encode(),
        _DICTIONARY_KEY: dictionary.as_bytes() if dictionary else b"",
    }
    schema = _BLOCK_SCHEMA.with_metadata(metadata)
    temporary = path.with_name(f".{path.name}.tmp")
    with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, schema) as out:
        for start in range(0, len(blocks), BLOCKS_PER_BATCH):
            chunk = pa.array(blocks[start : start + BLOCKS_PER_BATCH], pa.binary())
            out.write_batch(pa.record_batch([chunk], schema=schema))
    os.replace(temporary, path)


class RowStore:
    """An open row store; safe to share between threads.

    The file is mapped once to find where each block lies; blocks are then read with
    `pread` (a page fault on the mapping would map a whole page-cache folio, ~1 MB, into
    the process for a 3 KB block). Each `slices` call decompresses with a zstd context of
    its own (~40 us to make), freed when it returns: a context kept per thread and
    partition held ~0.2-0.5 MB each, up to threads x partitions of them."""

    def __init__(self, path: str, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        mapped = _map(path)
        reader = pa.ipc.open_file(pa.BufferReader(mapped))
        metadata = reader.schema.metadata or {}
        self.block_rows = int(metadata[_BLOCK_ROWS_KEY])
        raw = metadata.get(_DICTIONARY_KEY, b"")
        self._dictionary = zstandard.ZstdCompressionDict(raw) if raw else None
        self._begin, self._end = _block_bounds(reader, mapped.address)
        self._fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def _block(self, number: int, decompressor: zstandard.ZstdDecompressor) -> pa.RecordBatch:
        begin, end = int(self._begin[number]), int(self._end[number])
        data = os.pread(self._fd, end - begin, begin)
        plain = decompressor.decompress(data)
        return pa.ipc.read_record_batch(pa.py_buffer(plain), self.schema)

    def slices(self, rows: np.ndarray) -> list[pa.RecordBatch]:
        """The rows numbered `rows` (any order, repeats allowed), in that order, as
        zero-copy slices of their decoded blocks (one per run of consecutive rows of a
        block). DuckDB refuses sliced struct columns: `read` copies them."""
        decompressor = zstandard.ZstdDecompressor(dict_data=self._dictionary)
        decoded: dict[int, pa.RecordBatch] = {}
        out: list[pa.RecordBatch] = []
        run_block, run_start, run_length = -1, 0, 0
        for row in np.asarray(rows, dtype=np.int64).tolist():
            block, offset = divmod(row, self.block_rows)
            if block == run_block and offset == run_start + run_length:
                run_length += 1
                continue
            if run_length:
                out.append(decoded[run_block].slice(run_start, run_length))
            if block not in decoded:
                decoded[block] = self._block(block, decompressor)
            run_block, run_start, run_length = block, offset, 1
        if run_length:
            out.append(decoded[run_block].slice(run_start, run_length))
        return out

    def read(self, rows: np.ndarray) -> pa.Table:
        """The rows numbered `rows` (any order, repeats allowed), in that order, as a table
        of fresh arrays."""
        return unsliced(pa.Table.from_batches(self.slices(rows), schema=self.schema))


def nullable(schema: pa.Schema) -> pa.Schema:
    """`schema` with every field nullable, at every depth (as DuckDB returns tables; a
    block is read with any schema of its types at no cost)."""

    def relax(f: pa.Field) -> pa.Field:
        if pa.types.is_struct(f.type):
            return pa.field(f.name, pa.struct([relax(c) for c in f.type]), True, f.metadata)
        return f.with_nullable(True)

    return pa.schema([relax(f) for f in schema], metadata=schema.metadata)


def unsliced(table: pa.Table) -> pa.Table:
    """`table` copied into arrays without offsets (DuckDB refuses sliced struct columns)."""
    return table.take(pa.array(np.arange(table.num_rows, dtype=np.int64)))
