"""The streaming graph as built: what Beam checks when the job starts."""

from __future__ import annotations

import logging
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder, registry
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream as EventScript

from eventpipe.io.lake_target import LakeSink
from eventpipe.pipelines.stream_pipeline import StreamConfig, build_stream_pipeline

from stream_support import SUBSCRIPTION, T0


@pytest.mark.parametrize("max_event_age_s", [None, 86_400.0])
def test_stateful_steps_have_deterministic_key_coders(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, max_event_age_s: float | None
) -> None:
    """Beam warns (and Dataflow may group wrongly) when a stateful DoFn's key coder is not
    deterministic: every stateful step's input is typed (int shard, table)."""
    config = StreamConfig(
        SUBSCRIPTION,
        str(tmp_path),
        "run",
        T0,
        LakeSink(str(tmp_path)),
        enrich=None,
        max_event_age_s=max_event_age_s,
    )
    pipeline = beam.Pipeline(options=PipelineOptions(["--streaming"]))
    with caplog.at_level(logging.WARNING):
        build_stream_pipeline(pipeline | EventScript(), config)
    assert [r.getMessage() for r in caplog.records if "deterministic" in r.getMessage()] == []

    stateful = [
        node
        for node in pipeline.transforms_stack[0].parts
        for node in _leaves(node)
        if isinstance(node.transform, beam.ParDo) and node.transform._signature.is_stateful_dofn()
    ]
    assert sorted(node.full_label.rsplit("/", 1)[-1] for node in stateful) == [
        "DropSeen",
        "ParDo(_WindowedWriteFn)",
        "Write",
    ]
    for node in stateful:
        key_coder = registry.get_coder(node.inputs[0].element_type).key_coder()
        assert isinstance(key_coder, VarIntCoder) and key_coder.is_deterministic()


def _leaves(node):
    if not node.parts:
        yield node
    for part in node.parts:
        yield from _leaves(part)
