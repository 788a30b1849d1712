"""The landing log: a segment a collector is still writing is waited for (or left, and the
job exits 1), then rewritten; torn fragments holding the id are deleted."""

from __future__ import annotations

import subprocess
import sys

import pytest
from collector_support import wait_until
from erasure_support import (
    BOTH,
    DAYS,
    PERSON,
    build_lake,
    envelope,
    erased_line,
    event,
    files_holding,
)

from eventpipe.io.landing import TORN, SegmentWriter, landing_folder
from eventpipe.jobs.cli import main

pytestmark = pytest.mark.slow


def open_segment(lake, connection: int) -> SegmentWriter:
    """A collector's segment, open (locked by this process), holding the person's event."""
    writer = SegmentWriter(landing_folder(str(lake)), segment_seconds=3600)
    writer.append(envelope(connection, event(DAYS[1], PERSON), event(DAYS[1], "user-bob")))
    return writer


def test_erase_waits_for_an_open_segment_then_rewrites_it(tmp_path):
    lake = build_lake(tmp_path)
    writer = open_segment(lake.path, lake.a.connection)
    log = tmp_path / "erase.log"
    with open(log, "wb") as out:
        command = [sys.executable, "-m", "eventpipe.jobs.cli", "erase", "--lake", str(lake.path)]
        job = subprocess.Popen([*command, *BOTH, "--landing-wait", "300"], stdout=out, stderr=out)
        try:
            wait_until(lambda: b"open landing segments to close" in log.read_bytes(), "the wait")
            assert job.poll() is None
            writer.close()  # the collector rotates it (its timer, or its size)
            assert job.wait(timeout=300) == 0, log.read_text()
        finally:
            if job.poll() is None:
                job.kill()
    assert files_holding(lake.path) == []
    kept = [p.read_bytes() for p in (lake.path / "landing").glob("*.jsonl")]
    assert any(b"user-bob" in text for text in kept)  # bob's event of that request stays


def test_a_segment_still_open_is_left_and_the_job_exits_1(tmp_path, capsys):
    lake = build_lake(tmp_path)
    writer = open_segment(lake.path, lake.a.connection)
    capsys.readouterr()
    assert main(["erase", "--lake", str(lake.path), *BOTH, "--landing-wait", "0"]) == 1
    output = capsys.readouterr().out
    assert "still being written by a collector" in output
    assert files_holding(lake.path) == [f"landing/{writer.segment.path.rsplit('/', 1)[1]}"]
    writer.close()
    assert main(["erase", "--lake", str(lake.path), *BOTH]) == 0
    assert erased_line(capsys.readouterr().out)["landing"] == 1
    assert files_holding(lake.path) == []


def test_a_torn_fragment_holding_the_id_is_deleted(tmp_path, capsys):
    lake = build_lake(tmp_path)
    torn = lake.path / "landing" / TORN
    torn.mkdir()
    (torn / "a.tail").write_bytes(
        b'{"receivedAt":"x","body":{"batch":[{"userId":"' + PERSON.encode()
    )
    (torn / "b.tail").write_bytes(b'{"receivedAt":"x","body":{"batch":[{"userId":"user-bob"')
    assert main(["erase", "--lake", str(lake.path), "--user-id", PERSON]) == 0
    assert not (torn / "a.tail").exists() and (torn / "b.tail").exists()
