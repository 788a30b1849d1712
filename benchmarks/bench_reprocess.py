"""Benchmark: `eventpipe reprocess` and `eventpipe identity` over an imported lake.

Generates N events (`eventpipe generate`), imports them, then measures, each in its
own process (wall time, CPU time of the process and its threads, peak RSS):

- import:    `eventpipe import` of the corpus (for reference);
- identity:  `eventpipe identity` (graph build + re-stitch of every partition);
- identity again: the same with nothing new (no partition rewritten);
- reprocess: `eventpipe reprocess` of every day, from the raw archive.

    python benchmarks/bench_reprocess.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_import import measure
from measured import require


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workdir", help="keep the data here (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-reprocess-"))
    corpus, lake = work / "corpus", work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    cli = [sys.executable, "-m", "eventpipe.jobs.cli"]
    if not corpus.exists():
        measure([*cli, "generate", "--events", str(args.events), "--out", str(corpus),
                 "--seed", str(args.seed)])  # fmt: skip
    steps = {
        "import": [*cli, "import", str(corpus / "*"), "--lake", str(lake)],
        "identity": [*cli, "identity", "--lake", str(lake)],
        "identity again": [*cli, "identity", "--lake", str(lake)],
        "reprocess": [
            *cli,
            "reprocess",
            "--lake",
            str(lake),
            "--from",
            "1970-01-01",
            "--to",
            "9999-12-31",
        ],
    }
    results = {name: measure(command) for name, command in steps.items()}
    runs = sorted((lake / "_runs").glob("*.json"))
    events = json.loads(runs[0].read_text())["written"] if runs else 0
    require(events > 0, f"the import stored no event in {lake}")
    print(f"{events:,} stored events in {lake}")
    print(
        f"{'job':<16}{'wall s':>9}{'CPU s':>9}{'events/s':>11}{'events/CPU-s':>14}{'peak RSS MB':>13}"
    )
    for name, r in results.items():
        print(
            f"{name:<16}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}{events / r['wall_s']:>11,.0f}"
            f"{events / r['cpu_s']:>14,.0f}{r['peak_rss_mb']:>13,.0f}"
        )
    print(
        json.dumps({k: {m: v for m, v in r.items() if m != "stdout"} for k, r in results.items()})
    )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
