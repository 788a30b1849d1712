"""The sink interface: both sinks implement it, and no job or pipeline asks which sink it has."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from eventpipe.io.bigquery.sink import BigQuerySink
from eventpipe.io.bigquery.tables import BigQueryTarget, IncompatibleTableError
from eventpipe.io.lake_target import LakeSink
from eventpipe.io.sink import Sink, SinkError

PACKAGE = Path(__file__).resolve().parents[2] / "eventpipe"
TARGET = BigQueryTarget("p.d.events", staging="/tmp/staging")
# The only modules of jobs/ and pipelines/ that may name a concrete sink.
CHOOSES_THE_SINK = {"jobs/sinks.py"}
SINK_MODULES = ("eventpipe.io.bigquery", "eventpipe.io.lake_target", "eventpipe.io.lake_sink")


@pytest.mark.parametrize(
    "sink", [LakeSink("lake"), BigQuerySink(TARGET), BigQuerySink(TARGET, "l")]
)
def test_every_sink_implements_the_interface(sink: Sink) -> None:
    assert isinstance(sink, Sink)
    missing = [name for name in _interface() if not callable(getattr(type(sink), name, None))]
    assert missing == []


def _interface() -> list[str]:
    return [name for name in vars(Sink) if not name.startswith("_")]


def test_an_incompatible_table_is_a_sink_error() -> None:
    assert issubclass(IncompatibleTableError, SinkError)


def test_the_lake_sink_writes_and_records_in_the_lake(tmp_path: Path) -> None:
    sink = LakeSink(str(tmp_path))
    assert sink.prepare() == []
    with sink.for_run([]) as run_sink:
        assert run_sink is sink
    where = sink.record_run("r1", {"read": 1})
    assert Path(where) == tmp_path / "_runs" / "r1.json"
    assert str(tmp_path / "events") in sink.outputs()


def test_a_bigquery_sink_stages_in_its_lake_else_its_folder_else_a_temporary_one() -> None:
    with BigQuerySink(TARGET, "lake").for_run([]) as sink:
        assert sink.target.staging == TARGET.staging and sink.lake == "lake"
    with BigQuerySink(BigQueryTarget("p.d.t")).for_run(["--temp_location=gs://b/t"]) as sink:
        assert sink.target.staging == "gs://b/t"
    with BigQuerySink(BigQueryTarget("p.d.t")).for_run([]) as sink:
        staging = Path(sink.target.staging)
        assert staging.is_dir()
    assert not staging.exists()


def test_a_bigquery_sink_commits_no_lake_files() -> None:
    with pytest.raises(ValueError, match="commits no lake files"):
        BigQuerySink(TARGET).write_batch("r", None, 4, (("staged", "final"),))  # type: ignore[arg-type]


def _sink_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return [n for n in names if n.startswith(SINK_MODULES)]


def test_jobs_and_pipelines_name_no_concrete_sink_but_through_the_flags() -> None:
    """A pipeline takes a `Sink`; a job gets it from `jobs/sinks.py` (the lake writers that
    are not sinks, such as the stream job's run record, go through `LakeSink`)."""
    offenders = {}
    for folder in ("jobs", "pipelines"):
        for path in sorted((PACKAGE / folder).glob("*.py")):
            rel = f"{folder}/{path.name}"
            if rel in CHOOSES_THE_SINK:
                continue
            imports = [
                n
                for n in _sink_imports(path)
                if not (n == "eventpipe.io.lake_sink" and folder == "jobs")  # dedupe_buckets
                and not (n == "eventpipe.io.lake_target" and rel == "jobs/stream.py")
            ]
            if imports:
                offenders[rel] = imports
    assert offenders == {}
