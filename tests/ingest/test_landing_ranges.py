"""The landing log's reading side: what no committed run has imported, in whole lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from eventpipe.io import landing as L


def _ledger(lake: Path, name: str, segments: list[str], offsets: dict) -> None:
    folder = lake / L.LANDING / L.DONE
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"segments": segments, "offsets": offsets}))


@pytest.fixture
def writer(tmp_path: Path) -> L.SegmentWriter:
    lake = tmp_path / "lake"
    writer = L.SegmentWriter(L.landing_folder(str(lake)))
    yield writer
    if writer.segment is not None:
        os.close(writer.segment.fd)


def _lake(writer: L.SegmentWriter) -> str:
    return os.path.dirname(writer.folder)


def test_an_open_segment_gives_its_complete_lines_only(writer: L.SegmentWriter) -> None:
    writer.append(b'{"a":1}\n{"a":2}\n')
    os.write(writer.segment.fd, b'{"a":3')  # a line being written
    [r], claimed = L.pending_ranges(_lake(writer), 1 << 20)
    assert (r.start, r.line, r.data, r.lines, r.complete) == (0, 0, b'{"a":1}\n{"a":2}\n', 2, False)
    assert r.source == os.path.join(writer.folder, r.name) and r.name.endswith(".jsonl")
    assert claimed.paths == [] and claimed.recovered == []  # its writer lives: left open


def test_ranges_start_at_the_committed_offsets_and_a_closed_rest_completes(
    writer: L.SegmentWriter,
) -> None:
    writer.append(b'{"a":1}\n{"a":2}\n')
    name = os.path.basename(writer.segment.path).removesuffix(".open")
    _ledger(Path(_lake(writer)), "run-1", [], {name: [8, 1]})
    _ledger(Path(_lake(writer)), "run-0", [], {name: [0, 0]})  # an older batch's offset
    writer.append(b'{"a":3}\n')
    writer.close()
    [r], claimed = L.pending_ranges(_lake(writer), 1 << 20)
    assert (r.start, r.line, r.data, r.lines, r.complete) == (8, 1, b'{"a":2}\n{"a":3}\n', 2, True)
    assert [os.path.basename(p) for p in claimed.partial] == [name] and claimed.paths == []


def test_a_batch_takes_whole_lines_up_to_its_budget_and_at_least_one(
    writer: L.SegmentWriter,
) -> None:
    writer.append(b'{"a":1}\n{"a":22}\n{"a":3}\n')
    writer.close()
    [r], _ = L.pending_ranges(_lake(writer), 12)
    assert (r.data, r.complete) == (b'{"a":1}\n', False)
    [r], _ = L.pending_ranges(_lake(writer), 3)  # smaller than a line: that line whole
    assert (r.data, r.complete) == (b'{"a":1}\n', False)


def test_ledgers_are_deleted_once_their_segments_are_retired(writer: L.SegmentWriter) -> None:
    lake = _lake(writer)
    writer.append(b'{"a":1}\n')
    writer.close()
    [segment] = L.claim_closed_segments(lake).paths
    _ledger(Path(lake), "run-1", [os.path.basename(segment)], {})
    assert L.collect_ledgers(lake) == 0  # the segment is still there: its ledger says done
    assert L.claim_closed_segments(lake).done == [segment]
    L.retire_segments(lake, [segment], keep=True)
    assert L.collect_ledgers(lake) == 1
    assert L.done_segments(lake) == set()


def test_only_the_named_segments_share_the_budget(tmp_path: Path) -> None:
    folder = L.landing_folder(str(tmp_path / "lake"))
    names = []
    for _ in range(2):
        writer = L.SegmentWriter(folder)
        writer.append(b'{"a":1}\n' * 4)
        names.append(os.path.basename(writer.segment.path).removesuffix(".open"))
        writer.close()
    ranges, _ = L.pending_ranges(os.path.dirname(folder), 8, only={names[1]})
    assert [(r.name, r.data) for r in ranges] == [(names[1], b'{"a":1}\n')]


def test_ledgers_of_passed_offsets_are_deleted_and_the_furthest_kept(
    writer: L.SegmentWriter,
) -> None:
    lake = _lake(writer)
    writer.append(b'{"a":1}\n{"a":2}\n')
    name = os.path.basename(writer.segment.path).removesuffix(".open")
    _ledger(Path(lake), "run-1", [], {name: [8, 1]})
    _ledger(Path(lake), "run-2", [], {name: [16, 2]})
    assert L.collect_ledgers(lake) == 1
    assert L.landing_progress(lake) == (set(), {name: (16, 2)})
    assert L.pending_ranges(lake, 1 << 20)[0] == []  # nothing new: run-2's offset stands
