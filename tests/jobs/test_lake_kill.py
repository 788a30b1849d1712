"""Every batch job killed at each moment of its lake transaction: all-old or all-new after recovery.

Each case runs the job in a subprocess paused (EVENTPIPE_PAUSE_AT) at a named moment of
`io.lake_transaction` (the kill helper asserts the pause was reached), SIGKILLs it, checks
what a reader sees right then, runs the one recovery step, and checks that every partition
holds exactly its old files or none of them, with the rows of the old lake or of an
uninterrupted run; then the job runs again and its summary reconciles
(read = written + failed + duplicates).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventpipe.io import lake as L
from eventpipe.io.lake_lock import open_writer
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate

from pipeline_support import kill_job_at

pytestmark = pytest.mark.slow

TABLES = ("events", "raw", "failed")
FULL = ["--from", "2000-01-01", "--to", "2100-12-31"]


def job_args(job: str, lake: Path, corpus: Path) -> list[str]:
    return {
        "import": ["import", str(corpus / "*"), "--lake", str(lake), "--no-enrich"],
        "reprocess": ["reprocess", "--lake", str(lake), *FULL],
        "compact": ["compact", "--lake", str(lake), "--no-index"],
        "identity": ["identity", "--lake", str(lake)],
    }[job]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """A lake of two imports without enrichment (two files a day: compaction has work), a
    third corpus to import, and for each job the lake an uninterrupted run leaves."""
    root = tmp_path_factory.mktemp("kill")
    for name, seed in (("a", 31), ("b", 32), ("c", 33)):
        generate(root / name, events=1500, seed=seed, units_per_file=1500)
    lake = root / "lake"
    for name in ("a", "b"):
        assert main(job_args("import", lake, root / name)) == 0
    found = {"root": root, "lake": lake, "corpus": root / "c"}
    for job in ("import", "reprocess", "compact", "identity"):
        done = root / f"done-{job}"
        shutil.copytree(lake, done)
        assert main(job_args(job, done, found["corpus"])) == 0
        found[job] = done
    return found


def files(lake: Path) -> dict[str, frozenset[str]]:
    """table/date=D -> the names of its Parquet files."""
    out = {}
    for table in TABLES:
        for folder in sorted((lake / table).glob("date=*")):
            names = frozenset(p.name for p in folder.glob("*.parquet"))
            if names:
                out[f"{table}/{folder.name}"] = names
    return out


def rows(lake: Path) -> dict[str, pa.Table]:
    """table/date=D -> its rows in a canonical order, without what names the run that
    wrote them (a run killed and run again is another run): its id, and the time it
    received failed records that carry none."""
    out = {}
    for key in files(lake):
        table = pa.concat_tables(pq.read_table(p) for p in sorted((lake / key).glob("*.parquet")))
        if key.startswith("failed/"):
            table = table.drop_columns(["runId", "receivedAt"])
        order = [c for c in ("messageId", "source", "line", "index", "reason", "raw", "payload")
                 if c in table.column_names]  # fmt: skip
        out[key] = table.sort_by([(c, "ascending") for c in order])
    return out


def whole(now: dict[str, frozenset[str]], old: dict[str, frozenset[str]]) -> dict[str, str]:
    """Each partition's state: 'old' (exactly its old files) or 'new' (none of them);
    fails on a mix."""
    states = {}
    for key in old.keys() | now.keys():
        before, after = old.get(key, frozenset()), now.get(key, frozenset())
        assert after == before or not after & before, f"{key} mixes old and new files"
        states[key] = "old" if after == before else "new"
    return states


def recover(lake: Path) -> list[str]:
    with open_writer(str(lake), "test", "recovery") as notes:
        return notes


# (job, moment, whether the transaction had committed when killed)
CASES = [
    ("import", "before-commit", False),
    ("import", "commit-renamed-first", True),
    ("reprocess", "before-commit", False),
    ("reprocess", "commit-swapped-first", True),
    ("compact", "before-commit", False),
    ("compact", "commit-swapped-first", True),
    ("identity", "before-commit", False),
    ("identity", "commit-swapped-first", True),
]


@pytest.mark.parametrize(
    ("job", "moment", "committed"), CASES, ids=[f"{j}-{m}" for j, m, _ in CASES]
)
def test_a_job_killed_at_a_moment_of_its_commit_leaves_each_partition_old_or_new(
    base, tmp_path, job, moment, committed
):
    lake = tmp_path / "lake"
    shutil.copytree(base["lake"], lake)
    old_files, old_rows = files(lake), rows(lake)
    old_identity = (
        sorted(p.name for p in (lake / "identity").glob("*")) if job == "identity" else []
    )
    kill_job_at(moment, job_args(job, lake, base["corpus"]), tmp_path / "paused")

    # What a reader sees right at the kill.
    staged = list((lake / L.STAGING).glob("*/_COMMIT.json"))
    assert bool(staged) == committed
    if not committed:
        assert files(lake) == old_files  # nothing of the run is visible
    elif job in ("reprocess", "compact"):  # replaced whole: the first one new, the rest old
        states = whole(files(lake), old_files)
        assert "new" in states.values() and "old" in states.values()
    if job == "identity":
        now = sorted(p.name for p in (lake / "identity").glob("*"))
        assert (now == old_identity) != committed  # the graph swapped in at its first swap

    notes = recover(lake)
    assert any(("completed the commit" if committed else "removed the staged") in n for n in notes)
    assert not list((lake / L.STAGING).glob("*/*"))
    now, done = rows(lake), rows(base[job])
    if job == "import":  # it adds files: every old one stays
        assert all(old_files[k] <= files(lake)[k] for k in old_files)
    else:
        states = whole(files(lake), old_files)  # never a mix
        if not committed or job == "identity":
            assert set(states.values()) == {"old"}
    if not committed or job == "identity":  # identity: the graph committed, no re-stitch yet
        assert now.keys() == old_rows.keys()
        assert all(now[k].equals(old_rows[k]) for k in old_rows)
    else:  # rolled forward: the lake of an uninterrupted run
        assert now.keys() == done.keys()
        assert all(now[k].equals(done[k]) for k in now)
    if job == "identity":
        now_identity = sorted(p.name for p in (lake / "identity").glob("*"))
        assert (now_identity == old_identity) != committed
    if job == "import" and committed:  # the dead run is in the ledger with its counts
        ledger = [json.loads(p.read_text()) for p in (lake / L.RUNS).glob("*.json")]
        [dead] = [r for r in ledger if r.get("status") == "recovered"]
        added = sum(t.num_rows for k, t in now.items() if k.startswith("events/"))
        added -= sum(t.num_rows for k, t in old_rows.items() if k.startswith("events/"))
        assert (dead["job"], dead["written"]) == ("import", added)
    # The job run again reconciles and ends where an uninterrupted run does.
    assert main(job_args(job, lake, base["corpus"])) == 0
    final = rows(lake)
    assert final.keys() == done.keys()
    assert all(final[k].equals(done[k]) for k in final)
    for summary in (json.loads(p.read_text()) for p in (lake / L.RUNS).glob("*.json")):
        if "read" in summary:
            assert summary["read"] == (
                summary["written"] + summary["failed"] + summary["duplicates"]
            ), summary
