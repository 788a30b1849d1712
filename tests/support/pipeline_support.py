"""Helpers of the import-pipeline tests: an event factory and the pure stages in one session."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from eventpipe.io import lake as L
from eventpipe.schemas.records import ARCHIVE_COLUMN, RECORDS_SCHEMA
from eventpipe.transforms.chain import StageChain

RUN_START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

BASE_EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "anonymousId": "anon-1",
    "messageId": "msg-1",
    "timestamp": "2026-11-20T10:00:00.000Z",
    "properties": {"revenue": 12.5},
}


def make_event(**overrides: Any) -> dict[str, Any]:
    """A valid track event; `overrides` replace (or, with value ..., remove) properties."""
    event = copy.deepcopy(BASE_EVENT)
    for key, value in overrides.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


@dataclass
class StageOutput:
    events: list[dict]  # lake rows
    failed: list[dict]  # failed rows
    read: int


class Stages:
    """parse -> validate -> normalise in one DuckDB session, as a worker runs them."""

    def __init__(self, default_connection: int | None = 1) -> None:
        self.chain = StageChain("test-run", RUN_START, default_connection, enrich=None)

    def run_tables(self, records: list[str]) -> tuple[pa.Table, pa.Table, int]:
        table = pa.table(
            [
                ["test.jsonl"] * len(records),
                list(range(1, len(records) + 1)),
                [0] * len(records),
                records,
            ],
            schema=RECORDS_SCHEMA,
        )
        result = self.chain.run(table)
        return result.events, result.failed, result.read

    def run(self, *records: Any) -> StageOutput:
        """Run raw records (str as is, anything else JSON-encoded) through the stages."""
        texts = [r if isinstance(r, str) else orjson.dumps(r).decode() for r in records]
        events, failed, read = self.run_tables(texts)
        return StageOutput(
            events.drop_columns([ARCHIVE_COLUMN]).to_pylist(), failed.to_pylist(), read
        )


def kill_job_at(moment: str, args: list[str], marker: Path) -> None:
    """Run `eventpipe ARGS` until it pauses at the test hook `moment` (see io.lake.pause_point);
    assert it got there, then SIGKILL it (its whole process group)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventpipe.jobs.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, L.PAUSE_AT: moment, L.PAUSE_FILE: str(marker)},
    )
    while not marker.exists():
        assert proc.poll() is None, f"the job ended before it reached {moment}"
        time.sleep(0.05)
    assert marker.read_text() == f"{moment} {proc.pid}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
