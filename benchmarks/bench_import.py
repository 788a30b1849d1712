"""Benchmark: `eventpipe import` events per CPU-second next to a pyarrow-only floor.

Generates N events (`eventpipe generate`), flattens every event object into one
JSONL file (one event per line), then measures, each in its own process:

- floor:  pyarrow.json.read_json (1 thread, explicit schema; it skips the free-form
          properties/traits, which it cannot read as text) + pyarrow.dataset.write_dataset
          (hive partitions by day, zstd): the least work that turns JSONL into Parquet;
- import: `eventpipe import` of that same JSONL (DirectRunner, default options);
- corpus: `eventpipe import` of the generated corpus itself (envelopes, batches,
          gzip, 3% invalid records): the realistic case; and the same with --no-enrich,
          to show what enrichment costs.

CPU time and peak RSS come from wait4() of each command's process (its own usage,
threads included).

    python benchmarks/bench_import.py --events 2000000
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from measured import partitioned_rows, require

from eventpipe.schemas import EVENT_FIELDS, Field

FLOOR = r"""
import sys, pyarrow as pa, pyarrow.compute as pc, pyarrow.dataset as ds, pyarrow.json as pj
from eventpipe.schemas import arrow_schema

def loose(t):  # what pyarrow's JSON reader can fill directly from the text
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, loose(f.type)) for f in t])
    if pa.types.is_timestamp(t):
        return pa.string()
    if pa.types.is_decimal(t):
        return pa.float64()
    if pa.types.is_integer(t):
        return pa.int64()
    return t

# properties and traits are free-form JSON, which pyarrow cannot read as text: the floor
# skips them (less work than eventpipe does, so a stricter floor).
schema = pa.schema([pa.field(f.name, loose(f.type)) for f in arrow_schema()
                    if f.name not in ("properties", "traits", "kpid")])
table = pj.read_json(sys.argv[1], read_options=pj.ReadOptions(use_threads=False, block_size=64 << 20),
                     parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
ts = pc.strptime(pc.utf8_slice_codeunits(table["timestamp"], 0, 19), format="%Y-%m-%dT%H:%M:%S", unit="s")
table = table.append_column("date", pc.strftime(ts, format="%Y-%m-%d"))
ds.write_dataset(table, sys.argv[2], format="parquet", partitioning=["date"], partitioning_flavor="hive",
                 file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
                 use_threads=False, existing_data_behavior="overwrite_or_ignore")
print(table.num_rows)
"""


_ISO = re.compile(r"(?!0000)\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
_PY_TYPES = {
    "string": str,
    "uuid": str,
    "ip": str,
    "datetime": str,
    "json": dict,
    "object": dict,
    "boolean": bool,
    "int": int,
    "float": (int, float),
    "decimal": (int, float),
}


def _well_typed(value: object, fields: tuple[Field, ...]) -> bool:
    """Whether every known property of `value` has its schema's JSON type (nulls allowed)."""
    if not isinstance(value, dict):
        return False
    for f in fields:
        v = value.get(f.name)
        if v is None:
            continue
        if not isinstance(v, _PY_TYPES[f.kind]) or (
            f.kind in ("int", "float", "decimal") and isinstance(v, bool)
        ):
            return False
        if f.kind == "object" and not _well_typed(v, f.children):
            return False
    return True


def flatten_events(corpus: Path, out: Path) -> int:
    """Write every well-typed event object of the corpus as one JSONL line (what pyarrow can read)."""
    n = 0
    with out.open("wb") as sink:
        for path in sorted(corpus.iterdir()):
            if path.name.startswith("_"):
                continue
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as f:
                data = f.read()
            records = (
                [data]
                if ".json" in path.name and not path.name.endswith((".jsonl", ".jsonl.gz"))
                else data.splitlines()
            )
            if path.name.endswith(".ndjson"):
                records = data.splitlines()
            for raw in records:
                try:
                    record = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("body"), (dict, list)):
                    record = record["body"]
                events = (
                    record.get("batch")
                    if isinstance(record, dict) and "batch" in record
                    else record
                )
                events = events if isinstance(events, list) else [events]
                for event in events:
                    if _well_typed(event, EVENT_FIELDS) and _ISO.match(
                        event.get("timestamp") or ""
                    ):
                        sink.write(orjson.dumps(event) + b"\n")
                        n += 1
    return n


def measure(command: list[str]) -> dict:
    """Run a command; its wall time, CPU time (user+sys of it and its children) and peak RSS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(command)}\n{stdout}\n{stderr}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "stdout": stdout,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the data here (default: a temp dir)"
    )
    parser.add_argument("--skip-corpus", action="store_true", help="only the JSONL comparison")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the corpus and JSONL already in --workdir (--events and --seed are then ignored)",
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="eventpipe-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus, jsonl = work / "corpus", work / "events.jsonl"
    eventpipe = [sys.executable, "-m", "eventpipe.jobs.cli"]
    if args.reuse and (corpus / "_manifest.json").exists() and jsonl.exists():
        n = sum(1 for _ in jsonl.open("rb"))
    else:
        subprocess.run(
            [
                *eventpipe,
                "generate",
                "--events",
                str(args.events),
                "--out",
                str(corpus),
                "--seed",
                str(args.seed),
            ],
            check=True,
            capture_output=True,
        )
        n = flatten_events(corpus, jsonl)
    require(n > 0, f"no valid event in the generated corpus ({corpus})")
    size_mb = jsonl.stat().st_size / 1e6
    print(f"{n:,} events, {size_mb:,.0f} MB of JSONL ({size_mb * 1e6 / n:,.0f} B/event) in {work}")
    for lake in ("floor-lake", "lake-jsonl", "lake-corpus", "lake-plain"):
        shutil.rmtree(work / lake, ignore_errors=True)  # imports into a lake dedupe against it
    results = {}
    results["floor"] = measure([sys.executable, "-c", FLOOR, str(jsonl), str(work / "floor-lake")])
    results["import"] = measure(
        [
            *eventpipe,
            "import",
            str(jsonl),
            "--lake",
            str(work / "lake-jsonl"),
            "--connection-id",
            "1",
        ]
    )
    if not args.skip_corpus:
        results["corpus"] = measure(
            [*eventpipe, "import", str(corpus / "*"), "--lake", str(work / "lake-corpus")]
        )
        results["corpus-no-enrich"] = measure(
            [
                *eventpipe,
                "import",
                str(corpus / "*"),
                "--lake",
                str(work / "lake-plain"),
                "--no-enrich",
            ]
        )
    stored = {"floor": "floor-lake", "import": "lake-jsonl/events"}
    stored |= {"corpus": "lake-corpus/events", "corpus-no-enrich": "lake-plain/events"}
    for name in results:
        folder = work / stored[name]
        require(partitioned_rows(folder) > 0, f"{name} stored no event in {folder}")
    floor_rate = n / results["floor"]["cpu_s"]
    print(
        f"{'path':16} {'wall s':>8} {'CPU s':>8} {'events/s':>10} {'events/CPU-s':>13} {'vs floor':>9} {'peak RSS MB':>12}"
    )
    corpus_units = json.loads((corpus / "_manifest.json").read_text())["read_units"]
    for name, r in results.items():
        events = corpus_units if name.startswith("corpus") else n
        rate = events / r["cpu_s"]
        print(
            f"{name:16} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {events / r['wall_s']:10,.0f} {rate:13,.0f}"
            f" {rate / floor_rate:9.2f} {r['peak_rss_mb']:12,.0f}"
        )
    print(
        json.dumps(
            {k: {kk: vv for kk, vv in v.items() if kk != "stdout"} for k, v in results.items()}
        )
    )
    print(
        results["import"]["stdout"].strip().splitlines()[1] if results["import"]["stdout"] else ""
    )


if __name__ == "__main__":
    main()
