"""`eventpipe compact`: a partition's small files become one, with the same rows, atomically."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from eventpipe.io import compaction as C
from eventpipe.io import lake as L
from eventpipe.io import lake_transaction as T
from eventpipe.io.lake_lock import LOCK_FILE
from eventpipe.io.lake_transaction import LakeTransaction, recover_transactions
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate
from eventpipe.schemas import arrow_schema
from eventpipe.schemas.failures import FAILED_SCHEMA
from eventpipe.schemas.lake_layout import list_partitions
from eventpipe.serving.index_build import INDEX, index_is_current

SCHEMA = {"events": arrow_schema(), "failed": FAILED_SCHEMA}
SORT = {"events": "timestamp", "failed": "receivedAt"}
KEY = {"events": "messageId", "failed": "raw"}


@pytest.fixture(scope="module")
def source_lake(tmp_path_factory) -> Path:
    """A lake from three real imports (of disjoint files): three files per day partition.

    (One import of this small corpus writes one file per partition, whatever
    --chunk-mb: a writer flushes every FLUSH_ROWS rows or at the end of its bundle.)
    """
    root = tmp_path_factory.mktemp("compact")
    corpus = root / "corpus"
    generate(corpus, events=3000, seed=1, units_per_file=500)
    inputs = sorted(str(p) for p in corpus.iterdir() if not p.name.startswith("_"))
    lake = root / "lake"
    for group in (inputs[0::3], inputs[1::3], inputs[2::3]):
        assert main(["import", *group, "--lake", str(lake)]) == 0
    return lake


@pytest.fixture
def lake(source_lake, tmp_path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(source_lake, copy)
    return copy


def partitions(lake: Path, table: str) -> dict[str, list[Path]]:
    return {d.name: sorted(d.glob("*.parquet")) for d in sorted((lake / table).glob("date=*"))}


def contents(lake: Path, table: str) -> tuple[int, collections.Counter]:
    """Row count and multiset of the rows' key column (messageId / raw) of a table."""
    rows, keys = 0, collections.Counter()
    for files in partitions(lake, table).values():
        for path in files:
            t = pq.ParquetFile(path).read(columns=[KEY[table]])
            rows += t.num_rows
            keys.update(t[KEY[table]].to_pylist())
    return rows, keys


def snapshot(lake: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file (but the writer lock's, which each writer rewrites)."""
    return {
        str(p.relative_to(lake)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in lake.rglob("*")
        if p.is_file() and p.name != LOCK_FILE
    }


def compact(lake: Path, *args: str) -> int:
    return main(["compact", "--lake", str(lake), *args])


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def owned_by_dead_process(staging: str) -> None:
    owner = {"host": os.uname().nodename, "pid": dead_pid(), "job": "compact"}
    Path(staging, T.OWNER).write_text(json.dumps(owner))


def test_the_import_wrote_several_files_per_partition(source_lake):
    events = partitions(source_lake, "events")
    assert len(events) >= 28
    assert sum(len(f) for f in events.values()) > 2 * len(events)


def test_each_partition_becomes_one_sorted_file_with_the_same_rows(lake, capsys):
    before = {t: contents(lake, t) for t in SCHEMA}
    days = {t: partitions(lake, t) for t in SCHEMA}
    assert sum(len(f) > 1 for f in days["failed"].values()) >= 5
    assert compact(lake) == 0
    out = capsys.readouterr().out
    assert "events: compacted" in out and "failed: compacted" in out
    for table, schema in SCHEMA.items():
        after = partitions(lake, table)
        assert set(after) == set(days[table])
        assert all(len(files) == 1 for files in after.values())
        assert contents(lake, table) == before[table]  # same rows, same multiset of keys
        for day, [path] in after.items():
            if len(days[table][day]) > 1:
                assert path.name.startswith("part-compact-")
            else:
                assert [path] == days[table][day]
            assert pq.read_schema(path).equals(schema)
            data = pq.ParquetFile(path).read()
            column = data[SORT[table]]
            assert pc.all(pc.greater_equal(column[1:], column[:-1])).as_py() in (True, None)
            meta = pq.ParquetFile(path).metadata
            assert meta.row_group(0).column(0).compression == "ZSTD"
            assert all(
                meta.row_group(i).num_rows <= L.ROW_GROUP_ROWS for i in range(meta.num_row_groups)
            )
            names = [meta.row_group(0).column(i).path_in_schema for i in range(meta.num_columns)]
            blooms = {
                name
                for i, name in enumerate(names)
                if meta.row_group(0).column(i).bloom_filter_offset is not None
            }
            assert blooms == (set(L.BLOOM_COLUMNS) if table == "events" else set())
    assert not any((lake / L.STAGING).iterdir())


def test_a_second_run_changes_nothing(lake, capsys):
    assert compact(lake) == 0
    files = snapshot(lake)
    capsys.readouterr()
    assert compact(lake) == 0
    assert snapshot(lake) == files
    assert "events: compacted 0 of" in capsys.readouterr().out


def test_dry_run_changes_nothing(lake, capsys):
    files = snapshot(lake)
    assert compact(lake, "--dry-run") == 0
    assert snapshot(lake) == files
    out = capsys.readouterr().out
    assert "events: would compact" in out
    assert "events: would compact 0 of" not in out


def test_only_the_partitions_of_the_range_and_table_are_compacted(lake):
    before = partitions(lake, "events")
    failed = snapshot(lake / "failed")
    days = sorted(d for d, files in before.items() if len(files) > 1)
    first, last = days[3].removeprefix("date="), days[6].removeprefix("date=")
    assert compact(lake, "--table", "events", "--from", first, "--to", last) == 0
    after = partitions(lake, "events")
    for day, files in after.items():
        if days[3] <= day <= days[6]:
            assert len(files) == 1
        else:
            assert files == before[day]
    assert snapshot(lake / "failed") == failed


def test_big_partitions_are_split_and_stay_compacted(lake, monkeypatch):
    monkeypatch.setattr(C, "MAX_FILE_ROWS", 40)
    before = contents(lake, "events")
    files_before = partitions(lake, "events")
    assert compact(lake, "--table", "events") == 0
    split = 0
    for day, files in partitions(lake, "events").items():
        rows = [pq.read_metadata(f).num_rows for f in files]
        if len(files_before[day]) == 1:  # a partition of one file is left as it is
            assert files == files_before[day]
            continue
        assert len(files) == -(-sum(rows) // 40), day  # ceil(rows / 40) files
        assert max(rows) <= 40
        split += len(files) > 1
    assert split > 0  # the corpus has partitions of more than 40 rows: they were split
    assert contents(lake, "events") == before
    files = snapshot(lake)
    assert compact(lake, "--table", "events") == 0
    assert snapshot(lake) == files


def stage_one(lake: Path) -> tuple[LakeTransaction, list[Path]]:
    """A compaction that staged one partition's new file, then died."""
    part = next(p for p in list_partitions(str(lake), "events") if len(p.files) > 1)
    txn = C.stage_partition(str(lake), C.new_compaction_id(), C.plan_partition(part))
    owned_by_dead_process(txn.staging)
    return txn, [Path(p) for p in part.files]


def commit_without_applying(txn: LakeTransaction, monkeypatch) -> None:
    """The compaction dies right after writing its commit record."""
    monkeypatch.setattr(T, "apply_commit", lambda lake, record: None)
    txn.commit()
    monkeypatch.undo()


def test_a_compaction_killed_after_its_commit_is_completed_by_the_next_run(
    lake, capsys, monkeypatch
):
    before = contents(lake, "events")
    txn, old = stage_one(lake)
    commit_without_applying(txn, monkeypatch)
    # Not visible yet: the partition still has its old files only.
    assert sorted(old[0].parent.glob("*.parquet")) == old
    assert contents(lake, "events") == before
    assert compact(lake, "--table", "events", "--dry-run") == 0
    assert f"would have completed the commit of interrupted run {txn.id}" in capsys.readouterr().out
    assert Path(txn.staging, T.COMMIT).exists()
    [new] = [p.name for p in Path(txn.replaces[0][0]).glob("*.parquet")]
    assert compact(lake, "--table", "events") == 0
    assert f"completed the commit of interrupted run {txn.id}" in capsys.readouterr().out
    assert [p.name for p in old[0].parent.glob("*.parquet")] == [new]
    assert contents(lake, "events") == before
    assert not any((lake / L.STAGING).iterdir())


def test_a_compaction_killed_before_its_commit_is_discarded(lake):
    files = snapshot(lake / "events")
    txn, _ = stage_one(lake)
    assert recover_transactions(str(lake)) == [
        f"removed the staged files of abandoned run {txn.id}"
    ]
    assert not Path(txn.staging).exists()
    assert snapshot(lake / "events") == files


def test_a_live_compaction_is_left_alone(lake):
    files = snapshot(lake / "events")
    part = next(p for p in list_partitions(str(lake), "events") if len(p.files) > 1)
    txn = C.stage_partition(str(lake), C.new_compaction_id(), C.plan_partition(part))
    assert recover_transactions(str(lake)) == []  # owned by this live process
    assert Path(txn.staging).exists()
    assert snapshot(lake / "events") == files


def test_a_missing_lake_or_a_bad_date_is_a_clear_error(tmp_path, capsys):
    assert compact(tmp_path / "nowhere") == 2
    assert "no lake at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        compact(tmp_path, "--from", "2026-02-30")
    assert exit_info.value.code == 2
    assert "not a date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compact(tmp_path, "--from", "2026-02-03", "--to", "2026-02-01")


def test_rows_are_kept_exactly_even_with_nulls(lake):
    """Null-heavy columns and the nested structs round-trip value for value."""
    day = next(d for d, files in partitions(lake, "events").items() if len(files) > 1)
    files = partitions(lake, "events")[day]
    before = pa.concat_tables(pq.ParquetFile(f).read() for f in files).sort_by(
        [("timestamp", "ascending"), ("messageId", "ascending")]
    )
    assert compact(lake, "--table", "events") == 0
    [path] = partitions(lake, "events")[day]
    after = (
        pq.ParquetFile(path)
        .read()
        .sort_by([("timestamp", "ascending"), ("messageId", "ascending")])
    )
    assert after.equals(before)


def test_compaction_builds_the_serving_index_of_every_event_partition(lake, capsys):
    assert compact(lake, "--no-index") == 0
    assert not (lake / INDEX).exists()
    assert compact(lake, "--dry-run") == 0
    assert not (lake / INDEX).exists()
    assert "serving index: would index" in capsys.readouterr().out
    assert compact(lake) == 0
    assert "serving index: indexed" in capsys.readouterr().out
    folders = sorted((lake / "events").glob("date=*"))
    assert folders and all(index_is_current(str(lake), str(f)) for f in folders)
    assert not (lake / INDEX / "failed").exists()
    # A job replaces a partition's file: its index is stale until the next run rebuilds it.
    [path] = folders[0].glob("*.parquet")
    table = pq.read_table(path)
    path.unlink()
    pq.write_table(table.slice(1), folders[0] / "part-reprocessed.parquet")
    assert not index_is_current(str(lake), str(folders[0]))
    assert compact(lake) == 0
    assert "serving index: indexed 1 of" in capsys.readouterr().out
    assert index_is_current(str(lake), str(folders[0]))


def test_a_reader_never_sees_old_and_new_files_together(lake, monkeypatch):
    """Issue 12.11: whenever compaction deletes anything, each partition of the lake holds
    the old files or the new ones, never both (the staged folder is exchanged whole)."""
    txn, old = stage_one(lake)
    new = {old[0].parent / p.name for p in Path(txn.replaces[0][0]).glob("*.parquet")}
    partition = old[0].parent
    seen: list[set[Path]] = []
    delete = T.FileSystems.delete

    def delete_and_look(paths):
        seen.append(set(partition.glob("*.parquet")))
        return delete(paths)

    monkeypatch.setattr(T.FileSystems, "delete", delete_and_look)
    txn.commit()
    assert seen and all(files == new for files in seen)
    assert set(partition.glob("*.parquet")) == new
    assert not Path(txn.staging).exists()
