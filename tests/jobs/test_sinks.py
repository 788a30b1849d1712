"""Flags -> sink: one function for every job that writes events (import, reprocess, stream)."""

from __future__ import annotations

import argparse
import logging

import pytest

from eventpipe.io.bigquery.sink import BigQuerySink
from eventpipe.io.lake_target import LakeSink
from eventpipe.jobs.sinks import add_sink_arguments, open_sink, sink_from_flags


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake")
    add_sink_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "sink"),
    [
        (["--lake", "L"], LakeSink("L")),
        (["--sink", "bigquery", "--bq-table", "p.d.t"], None),
        (["--sink", "bigquery", "--bq-table", "p.d.t", "--lake", "L"], "L"),
    ],
)
def test_the_flags_choose_the_sink(argv: list[str], sink: object) -> None:
    built = sink_from_flags(flags(*argv))
    if isinstance(sink, LakeSink):
        assert built == sink
    else:
        assert isinstance(built, BigQuerySink)
        assert built.target.table == "p.d.t" and built.target.failed_table == "p.d.t_failed"
        assert built.lake == sink


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--lake DIR is required"),
        (["--sink", "bigquery"], "--sink bigquery needs --bq-table"),
        (["--sink", "bigquery", "--bq-table", "not-a-table"], "PROJECT.DATASET.TABLE"),
    ],
)
def test_a_missing_or_bad_flag_is_logged_and_opens_no_sink(
    argv: list[str], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        assert open_sink(flags(*argv)) is None
    assert message in caplog.text


def test_a_prepared_lake_sink_is_returned(tmp_path) -> None:
    assert open_sink(flags("--lake", str(tmp_path))) == LakeSink(str(tmp_path))
