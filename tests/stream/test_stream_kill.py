"""The stream job killed at a moment of a window file's lake transaction (real Pub/Sub emulator).

Each window file (and its raw/ archive) is committed in a lake transaction of its own: a
job killed before that commit leaves nothing visible, one killed after its first rename
(the archive) is rolled forward by the next writer's recovery, so an event file is never
visible without its archive, and the next run of the job reconciles.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from test_stream_pubsub import finish, publish_all, start_job

from eventpipe.io import lake as L
from eventpipe.io.lake_lock import open_writer
from eventpipe.io.pubsub_emulator import PubSubEmulator

from pipeline_support import kill_job_at
from stream_support import make_event

pytestmark = pytest.mark.slow


def visible(lake: Path, table: str) -> dict[str, int]:
    """date=D/name -> rows, of the table's visible files."""
    return {
        str(p.relative_to(lake / table)): pq.read_metadata(p).num_rows
        for p in (lake / table).glob("date=*/*.parquet")
    }


@pytest.mark.parametrize(
    ("moment", "committed"), [("before-commit", False), ("commit-renamed-first", True)]
)
def test_a_stream_killed_while_committing_a_window_is_rolled_back_or_forward(
    pubsub_emulator: PubSubEmulator, tmp_path: Path, moment: str, committed: bool
) -> None:
    topic, subscription = pubsub_emulator.create(f"events-kill-{moment}")
    lake = tmp_path / "lake"
    now = datetime.now(UTC)
    events = [make_event(i, now, messageId=f"m-{i}") for i in range(30)]
    publish_all(topic, [(orjson.dumps(e), {"connectionId": "3"}) for e in events])
    args = ["stream", "--subscription", subscription, "--lake", str(lake), "--no-enrich",
            "--stop-after-idle", "3"]  # fmt: skip
    kill_job_at(moment, args, tmp_path / "paused")

    # At the kill: before the commit nothing is visible; after its first rename, the archive only.
    [record] = list((lake / L.STAGING).glob("*/_COMMIT.json")) or [None]
    assert (record is not None) == committed
    assert visible(lake, "events") == {}
    assert bool(visible(lake, "raw")) == committed
    with open_writer(str(lake), "test", "recovery") as notes:
        pass
    assert any(("completed the commit" if committed else "removed the staged") in n for n in notes)
    assert not list((lake / L.STAGING).rglob("*.parquet"))
    # Every visible event file has its archive file, with the same rows.
    assert visible(lake, "events") == visible(lake, "raw")
    assert bool(visible(lake, "events")) == committed

    publish_all(topic, [(orjson.dumps(e), {"connectionId": "3"}) for e in events[:5]])
    finish(start_job(lake, subscription, "--no-enrich", "--stop-after-idle", "3"))
    runs = [json.loads(p.read_text()) for p in (lake / L.RUNS).glob("*.json")]
    [summary] = [r for r in runs if r.get("reconciles") is not None]
    assert summary["reconciles"]
    assert summary["read"] == summary["written"] + summary["failed"] + summary["duplicates"]
    assert visible(lake, "events") == visible(lake, "raw")
