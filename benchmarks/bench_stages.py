"""Benchmark: CPU of the import's stages (parse, validate, normalise), in process. Not a test.

Runs parse, validate and normalise (the stages of a `StageChain` without enrichment, one by
one) on bench_import's inputs (`prepare`: N generated events as flat JSONL, 50-event batch
documents and landing envelopes), reading each file's record chunks as the import does
(`io.raw_files.read_record_chunks`) and timing each stage's CPU (`time.thread_time`, robust
to a shared machine). Beside them, in the same run: bench_import's floor (issue 17's:
`read_json` schema inferred, one thread, 16 MiB blocks + `write_dataset` hive by day).

    .venv/bin/python benchmarks/bench_stages.py --events 200000 [--repeat 2] [--workdir DIR]

The whole import (`bench_import.py`) also pays reading, enrichment, deduplication, writing
and Beam; this isolates the stages that check the records.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_import import measure_floor, prepare
from measured import require

from eventpipe.io.raw_files import read_record_chunks
from eventpipe.transforms.chain import StageChain


def stages(path: Path) -> tuple[int, dict[str, float]]:
    """(events normalised, CPU seconds per stage) of one input file."""
    chain = StageChain("bench", datetime.now(UTC), default_connection=1, enrich=None)
    parser, validator, normaliser = chain.parser, chain.validator, chain.normaliser
    cpu = dict.fromkeys(("read", "parse", "validate", "normalise"), 0.0)
    events = 0
    clock = time.thread_time()
    for chunk in read_record_chunks(str(path)):
        now = time.thread_time()
        cpu["read"] += now - clock
        parsed = parser.parse(chunk)
        cpu["parse"] += (clock := time.thread_time()) - now
        valid = validator.validate(parsed.events)
        cpu["validate"] += (now := time.thread_time()) - clock
        rows = normaliser.normalise(valid.valid)
        cpu["normalise"] += (clock := time.thread_time()) - now
        events += rows.events.num_rows
    chain.close()
    return events, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="eventpipe-stages-"))
    work.mkdir(parents=True, exist_ok=True)
    # bench_import's inputs and floor: one definition of both (issue 17's floor).
    inputs = prepare(work, [args.events], args.seed, reuse=True)[args.events]
    n = sum(1 for _ in inputs["flat"].open("rb"))
    require(n > 0, "no event")
    print(f"{n:,} events; load average {os.getloadavg()[0]:.1f}")
    print(
        f"{'input':10} {'events':>8} {'read':>6} {'parse':>6} {'valid.':>6} {'norm.':>6}"
        f" {'ev/CPU-s (3 stages)':>20} {'floor ev/CPU-s':>15}"
    )
    for _ in range(args.repeat):
        floor_rate = n / measure_floor(inputs["flat"], work / "floor-lake")["cpu_s"]
        for name, path in inputs.items():
            events, cpu = stages(path)
            require(events > 0.9 * n, f"{name}: {events} events normalised of {n}")
            checked = cpu["parse"] + cpu["validate"] + cpu["normalise"]
            print(
                f"{name:10} {events:8,} {cpu['read']:6.2f} {cpu['parse']:6.2f} "
                f"{cpu['validate']:6.2f} {cpu['normalise']:6.2f} {n / checked:20,.0f}"
                f" {floor_rate:15,.0f}"
            )


if __name__ == "__main__":
    main()
