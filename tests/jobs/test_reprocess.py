"""`eventpipe reprocess`: from the raw archive, idempotent, partition by partition, crash-safe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventpipe.io import lake as L
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate

from pipeline_support import kill_job_at

FULL = ["--from", "2000-01-01", "--to", "2100-12-31"]


def partitions(lake: Path, table: str = "events") -> dict[str, pa.Table]:
    """Each date partition's rows, in a canonical order."""
    out = {}
    for folder in sorted((lake / table).glob("date=*")):
        files = sorted(folder.glob("*.parquet"))
        if files:
            rows = pa.concat_tables([pq.read_table(f) for f in files])
            order = ["messageId"] if table == "events" else ["source", "line", "index", "payload"]
            out[folder.name] = rows.sort_by([(c, "ascending") for c in order])
    return out


def same(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> bool:
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


def cli(*args: str) -> None:
    assert main(list(args)) == 0


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> dict[str, Path]:
    """The same corpus imported without enrichment ('plain') and with it ('enriched')."""
    root = tmp_path_factory.mktemp("reprocess")
    generate(root / "corpus", events=5000, seed=21, units_per_file=2500)
    cli("import", str(root / "corpus" / "*"), "--lake", str(root / "plain"), "--no-enrich")
    cli("import", str(root / "corpus" / "*"), "--lake", str(root / "enriched"))
    return {"root": root, "plain": root / "plain", "enriched": root / "enriched"}


def copy_lake(lakes: dict[str, Path], name: str, tmp_path: Path) -> Path:
    lake = tmp_path / name
    shutil.copytree(lakes[name], lake)
    return lake


def test_reprocess_enriches_from_the_archive_and_is_idempotent(lakes, tmp_path):
    lake = copy_lake(lakes, "plain", tmp_path)
    assert not same(partitions(lake), partitions(lakes["enriched"]))
    cli("reprocess", "--lake", str(lake), *FULL)
    # The archive holds all reprocessing needs: the rows equal an enriched import's.
    assert same(partitions(lake), partitions(lakes["enriched"]))
    assert same(partitions(lake, "raw"), partitions(lakes["enriched"], "raw"))
    [summary] = [
        s for s in map(json.loads, map(Path.read_text, (lake / "_runs").glob("*.json")))
        if s["job"] == "reprocess"
    ]  # fmt: skip
    assert summary["reconciles"] and summary["read"] == summary["written"] > 0
    first = partitions(lake)
    cli("reprocess", "--lake", str(lake), *FULL)
    assert same(partitions(lake), first)
    assert not list((lake / L.STAGING).glob("*/*"))


def test_reprocess_replaces_only_the_partitions_of_the_range(lakes, tmp_path):
    lake = copy_lake(lakes, "plain", tmp_path)
    before, enriched = partitions(lake), partitions(lakes["enriched"])
    days = sorted(before)
    chosen = days[3:6]
    first, last = (d.removeprefix("date=") for d in (chosen[0], chosen[-1]))
    cli("reprocess", "--lake", str(lake), "--from", first, "--to", last)
    after = partitions(lake)
    for day in days:
        expected = enriched if day in chosen else before
        assert after[day].equals(expected[day]), day


def test_bad_range_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["reprocess", "--lake", str(tmp_path), "--from", "2026-13-01", "--to", "2026-01-01"])
    assert "not a date" in capsys.readouterr().err
    assert (
        main(["reprocess", "--lake", str(tmp_path), "--from", "2026-02-01", "--to", "2026-01-01"])
        == 2
    )


def test_killed_reprocess_leaves_each_partition_old_or_new(lakes, tmp_path):
    lake = copy_lake(lakes, "plain", tmp_path)
    old, new = partitions(lake), partitions(lakes["enriched"])
    # Kill it between two partition swaps (after the first): the most delicate moment.
    kill_job_at("commit-swapped-first", ["reprocess", "--lake", str(lake), *FULL], tmp_path / "p")
    now = partitions(lake)
    assert now.keys() == old.keys()
    states = {day: "old" if now[day].equals(old[day]) else "new" for day in now}
    for day, state in states.items():
        assert now[day].equals(old[day] if state == "old" else new[day]), day
    assert sorted(set(states.values())) == ["new", "old"]  # killed half-way
    # The next run finishes the interrupted swaps first, then reprocesses again.
    cli("reprocess", "--lake", str(lake), *FULL)
    assert same(partitions(lake), new)
