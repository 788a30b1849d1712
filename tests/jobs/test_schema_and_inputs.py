"""The schema document, the lake's Arrow types, the CLI's schema and help, and input files."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from eventpipe.io.raw_files import NoInputError, expand_patterns, read_record_chunks
from eventpipe.jobs.cli import JOB_MODULES, build_parser, main
from eventpipe.schemas import arrow_schema, schema_document

SEED_SCHEMA = Path(__file__).parent.parent / "fixtures" / "seed_event_schema.json"


def test_schema_document_is_seed_000s():
    assert schema_document() == json.loads(SEED_SCHEMA.read_text())


def test_schema_command_prints_the_document(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schema_document()


@pytest.mark.parametrize(
    ("path", "arrow_type"),
    [
        (["connectionId"], pa.int32()),
        (["context", "screen", "width"], pa.int16()),
        (["context", "screen", "density"], pa.decimal128(3, 2)),
        (["context", "session", "id"], pa.int64()),
        (["context", "location", "latitude"], pa.float64()),
        (["context", "network", "wifi"], pa.bool_()),
        (["timestamp"], pa.timestamp("us", tz="UTC")),
        (["properties"], pa.string()),
        (["traits"], pa.string()),
    ],
)
def test_arrow_types(path, arrow_type):
    field = arrow_schema().field(path[0])
    for name in path[1:]:
        field = field.type.field(name)
    assert field.type == arrow_type


def commands() -> list[str]:
    """Every subcommand the `eventpipe` parser has."""
    [subparsers] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(subparsers.choices)


def test_every_job_module_registers_its_command():
    assert len(commands()) == len(JOB_MODULES)


@pytest.mark.parametrize("command", commands())
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out) > 200


def test_reads_jsonl_gzip_and_json_documents(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n\n{"x": 2}\r\n{"x": 3}')
    with gzip.open(tmp_path / "b.ndjson.gz", "wt") as f:
        f.write('{"y": 1}\n{"y": 2}\n')
    (tmp_path / "c.json").write_text('[\n{"z": 1},\n{"z": 2}\n]\n')
    (tmp_path / "_manifest.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("hello")
    files = [p for p, _ in expand_patterns([str(tmp_path / "*")])]
    assert [Path(p).name for p in files] == ["a.jsonl", "b.ndjson.gz", "c.json"]
    [a] = list(read_record_chunks(files[0]))
    assert a["line"].to_pylist() == [1, 3, 4]  # blank line 2 skipped, numbering kept
    assert a["raw"].to_pylist() == ['{"x": 1}', '{"x": 2}', '{"x": 3}']
    [b] = list(read_record_chunks(files[1]))
    assert b["raw"].to_pylist() == ['{"y": 1}', '{"y": 2}']
    [c] = list(read_record_chunks(files[2]))
    assert c.num_rows == 1 and json.loads(c["raw"][0].as_py()) == [{"z": 1}, {"z": 2}]


def test_chunks_split_big_files_on_line_boundaries(tmp_path):
    lines = [json.dumps({"n": i, "pad": "x" * 50}) for i in range(1000)]
    (tmp_path / "big.jsonl").write_text("\n".join(lines) + "\n")
    chunks = list(read_record_chunks(str(tmp_path / "big.jsonl"), chunk_bytes=4096))
    assert len(chunks) > 5
    assert [r for c in chunks for r in c["raw"].to_pylist()] == lines
    assert [n for c in chunks for n in c["line"].to_pylist()] == list(range(1, 1001))


def test_a_pattern_matching_nothing_is_an_error(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}")
    with pytest.raises(NoInputError, match="missing"):
        expand_patterns([str(tmp_path / "a.jsonl"), str(tmp_path / "missing*.jsonl")])


def test_a_big_json_array_is_split_with_positions_kept(tmp_path):
    events = [
        {"type": "track", "event": f"e{i}", "anonymousId": "a", "pad": "x" * 40} for i in range(500)
    ]
    (tmp_path / "export.json").write_text(json.dumps(events, indent=1))
    parts = list(read_record_chunks(str(tmp_path / "export.json"), chunk_bytes=4096))
    assert len(parts) > 5
    pieces = [json.loads(p["raw"][0].as_py()) for p in parts]
    # Each part says where in the array its first event stands.
    starts = [sum(len(piece) for piece in pieces[:i]) for i in range(len(pieces))]
    assert [p["first_index"][0].as_py() for p in parts] == starts
    assert [e for piece in pieces for e in piece] == events
    assert all(p["line"].to_pylist() == [1] for p in parts)


def test_split_document_gives_the_rows_of_the_whole(tmp_path):
    from pipeline_support import Stages

    events = [{"type": "track", "event": f"e{i}", "anonymousId": "a"} for i in range(300)]
    events[123] = {"type": "track", "anonymousId": "a"}  # invalid: no event name
    (tmp_path / "export.json").write_text(json.dumps(events))
    stages = Stages()
    whole = pa.concat_tables(list(read_record_chunks(str(tmp_path / "export.json"))))
    split = pa.concat_tables(
        list(read_record_chunks(str(tmp_path / "export.json"), chunk_bytes=1024))
    )
    results = []
    for records in (whole, split):
        parsed = stages.chain.parser.parse(records)
        validated = stages.chain.validator.validate(parsed.events)
        rows = stages.chain.normaliser.normalise(validated.valid).events
        results.append((rows.sort_by("messageId"), validated.failed["index"].to_pylist()))
    assert results[0][0].equals(results[1][0])
    assert results[0][1] == results[1][1] == [123]


def test_stage_functions_pickle_before_setup():
    """Beam ships DoFns to workers pickled: they must pickle before setup() runs."""
    from datetime import UTC, datetime

    from apache_beam.internal import pickler

    from eventpipe.transforms.enrich import EnrichOptions
    from eventpipe.transforms.stages import (
        EnrichEvents,
        NormaliseEvents,
        ParseRecords,
        ValidateEvents,
    )

    start = datetime(2026, 1, 1, tzinfo=UTC)
    for stage in (
        ParseRecords("run", start),
        ValidateEvents("run", start),
        NormaliseEvents("run", start, 1),
        EnrichEvents(EnrichOptions(), "run"),
    ):
        restored = pickler.loads(pickler.dumps(stage.fn))
        assert type(restored) is type(stage.fn)
        assert vars(restored).keys() == vars(stage.fn).keys()  # the configuration made the trip
        restored.setup()  # and they work after the trip
        restored.teardown()
