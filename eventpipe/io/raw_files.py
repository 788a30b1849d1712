"""Source: raw event files (local or any Beam filesystem, plain or gzip) -> record chunks.

A JSONL/NDJSON file gives one record per non-blank line; a `.json` file is one
record. Records travel in chunks (Arrow tables of `schemas.records.RECORDS_SCHEMA`) of a
few MB, so Beam moves a few big elements instead of millions of small ones. An
uncompressed JSONL/NDJSON file bigger than a range is read in byte ranges
(`io.byte_ranges`), so that workers share it; line numbers stay exact.

What cannot become a record (see `raw_records`: bad UTF-8, over a size limit, a file
that cannot be read to its end) becomes failed rows: the second output of `ReadRawRecords`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import BinaryIO

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from eventpipe.core.metrics import count_failed
from eventpipe.io.byte_ranges import (
    ByteRange,
    count_newlines,
    range_blocks,
    range_bytes,
    split_file,
)
from eventpipe.io.gzip_blocks import read_blocks
from eventpipe.io.raw_records import Rejected, document_chunks, line_chunks
from eventpipe.schemas.failures import INVALID_FILE, rejected_records
from eventpipe.schemas.outputs import DAMAGED_FILES, FAILED_TAG, MAIN_TAG, NAMESPACE, READ

log = logging.getLogger(__name__)

LINE_SUFFIXES = (".jsonl", ".ndjson")
DOCUMENT_SUFFIXES = (".json",)
CHUNK_BYTES = (
    12 * 1024 * 1024
)  # measured at 2M events: ~6% less CPU than 8 MB; 16 MB adds RSS, not speed


class NoInputError(ValueError):
    """A pattern matched no readable event file."""


def _base_name(path: str) -> str:
    return path[:-3] if path.endswith(".gz") else path


def is_event_file(path: str) -> bool:
    """Whether `path` names a file the importer reads: .json/.jsonl/.ndjson, optionally .gz.

    Names starting with `_` or `.` are skipped (manifests, `_SUCCESS` markers,
    hidden files), as Hadoop, Spark and Beam's own sinks do.
    """
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if name.startswith(("_", ".")):
        return False
    return _base_name(path).endswith(LINE_SUFFIXES + DOCUMENT_SUFFIXES)


def expand_patterns(patterns: list[str]) -> list[tuple[str, int]]:
    """(path, size) of every event file matched by the patterns (paths, globs or URLs).

    Raises NoInputError naming the first pattern that matched no event file.
    """
    found: dict[str, int] = {}
    for pattern, result in zip(patterns, FileSystems.match(patterns), strict=True):
        matched = [m for m in result.metadata_list if is_event_file(m.path)]
        if not matched:
            raise NoInputError(
                f"no event file (.json, .jsonl, .ndjson, optionally .gz) matches {pattern!r}"
            )
        for m in matched:
            found[m.path] = m.size_in_bytes
    return sorted(found.items())


def is_splittable(path: str) -> bool:
    """Whether a file can be read in byte ranges: uncompressed JSONL/NDJSON (a gzip file
    can only be inflated from its start, a `.json` file is one record)."""
    return path.endswith(LINE_SUFFIXES)


def plan_reads(files: Sequence[str | tuple[str, int]], chunk_bytes: int) -> list[ByteRange]:
    """What the readers read: each file whole, but an uncompressed JSONL/NDJSON file of
    known size over one range, which is split into byte ranges (`io.byte_ranges`)."""
    sized = [f for f in files if not isinstance(f, str)]
    step = range_bytes(sum(size for _, size in sized), chunk_bytes)
    reads: list[ByteRange] = []
    for f in files:
        if isinstance(f, str) or not is_splittable(f[0]):
            reads.append(ByteRange(f if isinstance(f, str) else f[0]))
        else:
            reads.extend(split_file(f[0], f[1], step))
    return reads


GZIP_NOTE_BYTES = 16 * 2**20


def unsplittable_input(files: Sequence[tuple[str, int]]) -> str | None:
    """A note for the log when the whole input is one big gzip file, which one worker
    reads alone (None otherwise)."""
    if len(files) != 1 or not files[0][0].endswith(".gz") or files[0][1] < GZIP_NOTE_BYTES:
        return None
    return (
        f"{files[0][0]} is the whole input and a gzip file cannot be split: one worker reads "
        "it and the others wait; to use every core, give several files (split -l, or an "
        "export in parts) or an uncompressed .jsonl, which is read in byte ranges"
    )


def _open(path: str) -> BinaryIO:
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_record_chunks(
    source: str | ByteRange, chunk_bytes: int = CHUNK_BYTES, newlines_before: int = 0
) -> Iterator[pa.Table | Rejected]:
    """Yield the records of one file (or byte range of one, whose start holds
    `newlines_before` newlines before it) as Arrow tables of about `chunk_bytes` of
    text, and what cannot be records as `Rejected`."""
    unit = ByteRange(source) if isinstance(source, str) else source
    path = unit.path
    if not unit.whole:
        with _open(path) as handle:
            first, blocks = range_blocks(handle, unit, chunk_bytes)
            lines_before = newlines_before + (first > unit.start)
            yield from line_chunks(path, blocks, lines_before)
        return
    blocks = read_blocks(partial(_open, path), chunk_bytes, gzip=path.endswith(".gz"))
    if _base_name(path).endswith(DOCUMENT_SUFFIXES):
        yield from document_chunks(path, blocks, chunk_bytes)
    else:
        yield from line_chunks(path, blocks)


def _count_newlines(unit: ByteRange) -> tuple[tuple[str, int], int]:
    """((path, range index), newlines in the range's bytes)."""
    assert unit.end is not None
    with _open(unit.path) as handle:
        return (unit.path, unit.index), count_newlines(handle, unit.start, unit.end)


@beam.typehints.with_output_types(pa.Table)
class _ReadChunks(beam.DoFn):
    """Reads a file or byte range: record chunks, and (tagged FAILED_TAG, counted as read)
    its rejections."""

    def __init__(self, run_id: str, run_start: datetime, chunk_bytes: int) -> None:
        self.run_id = run_id
        self.run_start = run_start
        self.chunk_bytes = chunk_bytes

    def setup(self) -> None:
        self.read = Metrics.counter(NAMESPACE, READ)
        self.damaged = Metrics.counter(NAMESPACE, DAMAGED_FILES)

    def process(self, unit: ByteRange | str, newlines: Mapping | None = None) -> Iterator:
        unit = ByteRange(unit) if isinstance(unit, str) else unit
        path = unit.path
        before = sum(newlines[(path, i)] for i in range(unit.index)) if newlines else 0
        for item in read_record_chunks(unit, self.chunk_bytes, before):
            if isinstance(item, pa.Table):
                yield item
                continue
            failed = rejected_records(
                path, item.lines, item.reason, item.messages, item.raws,
                self.run_id, self.run_start, item.indexes,
            )  # fmt: skip
            if item.reason == INVALID_FILE:
                log.warning("%s: %s", path, item.messages[0])
                self.damaged.inc()
            self.read.inc(failed.num_rows)
            count_failed(failed)
            yield beam.pvalue.TaggedOutput(FAILED_TAG, failed)


class ReadRawRecords(beam.PTransform):
    """Files (already expanded: paths, or (path, size) as `expand_patterns` gives them,
    which lets a big uncompressed line file be read in byte ranges by several workers)
    -> (chunks of raw records, failed rows)."""

    def __init__(
        self,
        files: Sequence[str | tuple[str, int]],
        run_id: str,
        run_start: datetime,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        super().__init__()
        self.reads = plan_reads(files, chunk_bytes)
        self.fn = _ReadChunks(run_id, run_start, chunk_bytes)

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[beam.PCollection, beam.PCollection]:
        units = pbegin | "ListFiles" >> beam.Create(self.reads) | "SpreadFiles" >> beam.Reshuffle()
        side = []
        counted = [r for r in self.reads if r.end is not None]  # followed by a range of its file
        if counted:  # the exact line numbers of a range need the newlines of those before it
            counts = (
                pbegin
                | "ListRanges" >> beam.Create(counted)
                | "SpreadRanges" >> beam.Reshuffle()
                | "CountLines" >> beam.Map(_count_newlines)
            )
            side = [beam.pvalue.AsDict(counts)]
        outputs = units | "ReadChunks" >> beam.ParDo(self.fn, *side).with_output_types(
            pa.Table
        ).with_outputs(FAILED_TAG, main=MAIN_TAG)
        return outputs[MAIN_TAG], outputs[FAILED_TAG]
