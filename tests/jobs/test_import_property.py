"""A whole import of random inputs: every record is written, failed or a duplicate, once.

Hypothesis draws files of valid events (message ids from a small pool, so copies occur
within and across files) mixed with records that seed 000 rejects; the import runs through
the CLI into a real lake, and the test checks the lake against its own bookkeeping, not
against the product's.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import orjson
import pyarrow.dataset as ds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.jobs.cli import main

from pipeline_support import make_event

# Records seed 000 rejects, whatever the rest of the input is.
INVALID = [
    '{"type": "track", "event": "E", "anonymousId": ',  # not JSON
    '{"type": "nope", "anonymousId": "a"}',  # unknown type
    '{"type": "track", "anonymousId": "a"}',  # a track event without `event`
    '{"type": "track", "event": "E"}',  # neither userId nor anonymousId
    '{"type": "track", "event": "E", "anonymousId": "a", "timestamp": "yesterday"}',
    '"a string"',  # not an object
]

valid = st.builds(
    lambda mid, name, minute: ("valid", mid, name, minute),
    st.sampled_from([f"m{i}" for i in range(12)]),
    st.sampled_from(["Viewed", "Clicked", "Bought"]),
    st.integers(0, 59),
)
invalid = st.builds(lambda i: ("invalid", INVALID[i]), st.integers(0, len(INVALID) - 1))
files = st.lists(st.lists(st.one_of(valid, valid, invalid), max_size=25), min_size=1, max_size=3)


def record_text(record: tuple) -> str:
    if record[0] == "invalid":
        return record[1]
    _, mid, name, minute = record
    return orjson.dumps(
        make_event(messageId=mid, event=name, timestamp=f"2026-11-20T10:{minute:02d}:00.000Z")
    ).decode()


@settings(max_examples=8, suppress_health_check=[HealthCheck.too_slow])
@given(files)
def test_every_record_is_written_failed_or_a_duplicate_once(inputs):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = []
        for n, records in enumerate(inputs):  # file names sort in input order
            path = root / f"in-{n}.jsonl"
            path.write_text("".join(record_text(r) + "\n" for r in records))
            paths.append(str(path))
        lake = root / "lake"
        assert main(["import", *paths, "--lake", str(lake), "--connection-id", "1"]) == 0

        records = [r for rs in inputs for r in rs]
        # The survivor rule: the copy received first (receivedAt is the event's timestamp
        # here: no envelope, no sentAt), then the first in the input (file, then line).
        received = sorted(
            (r[3], n, line, r[1], r[2])
            for n, rs in enumerate(inputs)
            for line, r in enumerate(rs)
            if r[0] == "valid"
        )
        first_copy: dict[str, str] = {}  # messageId -> event name of its surviving copy
        for *_, mid, name in received:
            first_copy.setdefault(mid, name)
        n_valid = sum(r[0] == "valid" for r in records)
        n_invalid = len(records) - n_valid

        [run] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
        summary = run.get("summary", run)
        assert summary["read"] == len(records)
        assert summary["written"] == len(first_copy)
        assert summary["failed"] == n_invalid
        assert summary["duplicates"] == n_valid - len(first_copy)

        events = _rows(lake / "events", ["messageId", "event", "connectionId"])
        assert sorted(events["messageId"]) == sorted(first_copy)  # each id once
        assert dict(zip(events["messageId"], events["event"], strict=True)) == first_copy
        assert set(events["connectionId"]) <= {1}
        assert len(_rows(lake / "failed", ["reason"])["reason"]) == n_invalid


def _rows(table: Path, columns: list[str]) -> dict[str, list]:
    if not table.exists():
        return {c: [] for c in columns}
    return ds.dataset(table, format="parquet", partitioning="hive").to_table(columns).to_pydict()
