"""A third sink is one module implementing `io.sink.Sink`: the import graph and the run
summary take it as they take the lake, with nothing else to change."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from eventpipe.io.sink import CommitFiles, Sink
from eventpipe.jobs.cli import main
from eventpipe.jobs.common import run_to_summary
from eventpipe.pipelines.import_pipeline import ImportConfig, build_import_pipeline
from eventpipe.sample.generator import generate
from eventpipe.schemas.outputs import FAILED_ROWS, NAMESPACE, WRITTEN


class _WriteFiles(beam.DoFn):
    def __init__(self, folder: str, counter: str) -> None:
        self.folder, self.counter = folder, counter

    def process(self, table: pa.Table) -> Iterator[int]:
        Metrics.counter(NAMESPACE, self.counter).inc(table.num_rows)
        pq.write_table(table, Path(self.folder, f"{uuid.uuid4().hex}.parquet"))
        yield table.num_rows


class _WriteBoth(beam.PTransform):
    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def expand(self, pcolls: tuple[beam.PCollection, beam.PCollection]) -> None:
        events, failed = pcolls
        _ = events | "Events" >> beam.ParDo(_WriteFiles(str(self.folder / "events"), WRITTEN))
        _ = failed | "Failed" >> beam.ParDo(_WriteFiles(str(self.folder / "failed"), FAILED_ROWS))


@dataclass(frozen=True)
class FolderSink:
    """Every table as a Parquet file of `folder/events` or `folder/failed` (no dedupe)."""

    folder: Path

    def describe(self) -> str:
        return str(self.folder)

    def prepare(self) -> list[str]:
        for table in ("events", "failed"):
            (self.folder / table).mkdir(parents=True, exist_ok=True)
        return [f"created {self.folder}"]

    def recover(self) -> list[str]:
        return []

    @contextmanager
    def for_run(self, beam_args: list[str]) -> Iterator[FolderSink]:
        yield self

    def write_batch(
        self, run_id: str, run_start: datetime, buckets: int, commit_with: CommitFiles = ()
    ) -> beam.PTransform:
        return _WriteBoth(self.folder)

    def replace_days(
        self, run_id: str, run_start: datetime, partitions: Sequence[str], buckets: int
    ) -> beam.PTransform:
        raise NotImplementedError

    def write_stream(
        self, run_id: str, run_start: datetime, window_s: int, allowed_lateness_s: float
    ) -> beam.PTransform:
        raise NotImplementedError

    def record_run(self, run_id: str, summary: dict) -> str:
        path = self.folder / f"{run_id}.summary"
        path.write_text(str(summary["read"]))
        return str(path)

    def outputs(self) -> str:
        return f"events and failed: {self.folder}"


def rows(folder: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in folder.glob("*.parquet"))


def test_the_import_graph_and_summary_write_through_a_new_sink(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "corpus"
    generate(corpus, events=600, seed=5, units_per_file=200)
    lake = tmp_path / "lake"
    assert main(["import", str(corpus / "*"), "--lake", str(lake)]) == 0
    capsys.readouterr()

    sink = FolderSink(tmp_path / "folder")
    assert isinstance(sink, Sink)
    assert sink.prepare()
    files = sorted(str(p) for p in corpus.glob("*") if not p.name.startswith(("_", ".")))
    start = datetime.now(UTC)
    config = ImportConfig(files=files, sink=sink, identity=None, run_id="r3", run_start=start)
    build = partial(build_import_pipeline, config=config)
    summary = run_to_summary(sink, "r3", [], build, {"job": "import"}, files=len(files))

    assert summary.reconciles and summary.duplicates == 0  # (this sink deduplicates nothing)
    assert (summary.written, summary.failed) == (
        rows(sink.folder / "events"),
        rows(sink.folder / "failed"),
    )
    # The lake import's events and duplicates (copies within the corpus) are what this sink writes.
    [lake_run] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    assert summary.written == rows_in_lake(lake) + lake_run["duplicates"]
    assert summary.failed == lake_run["failed"]
    assert (sink.folder / "r3.summary").read_text() == str(summary.read)
    assert f"events and failed: {sink.folder}" in capsys.readouterr().out


def rows_in_lake(lake: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in (lake / "events").glob("*/*.parquet"))
