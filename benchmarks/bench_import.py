"""Benchmark: `eventpipe import` events per CPU-second against a strict pyarrow floor.

Generates events (`eventpipe generate`), keeps every well-typed event object, and
writes the same N events in three forms, each imported by `eventpipe import`:

- flat:      one event per line (JSONL);
- batches:   50-event batch documents `{"batch": [...], "sentAt": ...}`, one per line;
- envelopes: those batches in landing envelopes `{"receivedAt", "ip", "connectionId",
             "body"}`, as the collector writes them (collector.requests.envelope_line).

The floor (issue 17) is in-process: `pyarrow.json.read_json` (schema inferred,
use_threads=False, 16 MiB blocks) + `pyarrow.dataset.write_dataset` (hive by day),
timed inside a forked child (its CPU and wall from the first read to the last write).
The old floor (a separate process, explicit schema, date parsing, zstd) is a second
ratio column. Import CPU is the user+sys time of the import process and its reaped
children (its local worker processes), from wait4(); peak RSS is the largest of them.
Also measured: the fixed cost of a small import (one event, median of 3 runs), and
optionally the peak RSS of the batched import at 1M, 2M and 4M events (--rss-series)
and one flat file on 1 worker against one per core (--cores: wall ratio, same lake).

    python benchmarks/bench_import.py                      # 200k events
    python benchmarks/bench_import.py --sizes 200000,2000000 --cores --workdir /tmp/bench
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import orjson
from measured import partitioned_rows, require

from eventpipe.collector.requests import envelope_line
from eventpipe.schemas import EVENT_FIELDS, Field

BATCH = 50
FORMS = ("flat", "batches", "envelopes")

OLD_FLOOR = r"""
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


def _floor(jsonl: str, out: str, report: multiprocessing.connection.Connection) -> None:
    """The floor of issue 17, timed in this (forked) process: read_json with an inferred
    schema, one thread, 16 MiB blocks; write_dataset hive-partitioned by day."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.json as pj

    wall, cpu = time.monotonic(), time.process_time()
    table = pj.read_json(jsonl, read_options=pj.ReadOptions(use_threads=False, block_size=16 << 20))
    ts = table["timestamp"]
    day = pc.utf8_slice_codeunits(ts, 0, 10) if ts.type == "string" else pc.strftime(ts, "%Y-%m-%d")
    table = table.append_column("date", day)
    ds.write_dataset(
        table,
        out,
        format="parquet",
        partitioning=["date"],
        partitioning_flavor="hive",
        use_threads=False,
        existing_data_behavior="overwrite_or_ignore",
    )
    report.send((time.monotonic() - wall, time.process_time() - cpu, table.num_rows))


def measure_floor(jsonl: Path, out: Path) -> dict:
    """The in-process floor, run in a forked child (its peak RSS is its own)."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_floor, args=(str(jsonl), str(out), send))
    child.start()
    send.close()
    try:
        wall, cpu, rows = receive.recv()
    except EOFError:
        sys.exit(f"the floor failed on {jsonl} (its error is above)")
    _, _, usage = os.wait4(child.pid, 0)
    require(rows > 0, f"the floor read no row of {jsonl}")
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": usage.ru_maxrss / 1024}


def measure(command: list[str]) -> dict:
    """Run a command: its wall time, CPU time (user+sys of it and its reaped children)
    and peak RSS (the largest of them)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
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
    }


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


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    return {int: "num", float: "num", str: "str", dict: "obj", list: "list"}[type(value)]


def _stable(value: object, path: str, kinds: dict[str, str]) -> object:
    """`value` without the parts whose JSON type differs from the first one seen at their
    path (which pyarrow's schema inference rejects): dropped keys and list items."""
    if value is None:
        return value
    if kinds.setdefault(path, _kind(value)) != _kind(value):
        return _DROP
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            item = _stable(item, f"{path}.{key}", kinds)
            if item is not _DROP:
                kept[key] = item
        return kept
    if isinstance(value, list):
        items = (_stable(item, f"{path}[]", kinds) for item in value)
        return [item for item in items if item is not _DROP]
    return value


_DROP = object()


def corpus_events(corpus: Path) -> Iterator[bytes]:
    """Every well-typed event object of a generated corpus, as JSON that pyarrow's schema
    inference reads: a free-form key or list item whose JSON type differs from the first
    seen at its path (`properties.filters[].value`: a string, then a number) is left out,
    the same in every form."""
    kinds: dict[str, str] = {}
    for path in sorted(corpus.iterdir()):
        if path.name.startswith("_"):
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
        whole = path.name.endswith((".json", ".json.gz"))
        for raw in [data] if whole else data.splitlines():
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("body"), (dict, list)):
                record = record["body"]
            events = (
                record.get("batch") if isinstance(record, dict) and "batch" in record else record
            )
            for event in events if isinstance(events, list) else [events]:
                if _well_typed(event, EVENT_FIELDS) and _ISO.match(event.get("timestamp") or ""):
                    yield orjson.dumps(_stable(event, "", kinds))


def _forms(part: list[bytes]) -> dict[str, bytes]:
    """50 events as flat lines, one batch document and one landing envelope."""
    sent = orjson.loads(part[-1])["timestamp"]
    body = b'{"batch":[' + b",".join(part) + b'],"sentAt":' + orjson.dumps(sent) + b"}"
    return {
        "flat": b"\n".join(part) + b"\n",
        "batches": body + b"\n",
        "envelopes": envelope_line(sent, "203.0.113.9", 1, body),
    }


def prepare(work: Path, sizes: list[int], seed: int, reuse: bool) -> dict[int, dict[str, Path]]:
    """The inputs of every size: the first N events of one generated corpus, each as
    flat JSONL, batch documents and landing envelopes (streamed: never all in memory)."""
    inputs = {n: {form: work / str(n) / f"{form}.jsonl" for form in FORMS} for n in sizes}
    if reuse and all(p.exists() for forms in inputs.values() for p in forms.values()):
        return inputs
    corpus = work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    need = int(max(sizes) * 1.06) + 1000  # ~3% of a corpus is invalid: generate a margin
    command = [sys.executable, "-m", "eventpipe.jobs.cli", "generate", "--events", str(need)]
    subprocess.run([*command, "--out", str(corpus), "--seed", str(seed)], check=True)
    sinks = {}
    for n, forms in inputs.items():
        (work / str(n)).mkdir(exist_ok=True)
        sinks[n] = {form: path.open("wb") for form, path in forms.items()}
    written, part = 0, []
    for event in corpus_events(corpus):
        part.append(event)
        if len(part) == BATCH or written + len(part) == max(sizes):
            texts = _forms(part)
            for n, files in sinks.items():
                if written < n:
                    for form, text in texts.items():
                        files[form].write(text)
            written, part = written + len(part), []
            if written == max(sizes):
                break
    for files in sinks.values():
        for f in files.values():
            f.close()
    require(written == max(sizes), f"only {written:,} usable events in {corpus}")
    shutil.rmtree(corpus)
    return inputs


def import_run(source: Path, lake: Path, *extra: str) -> dict:
    """`eventpipe import` of one file into a fresh lake: measured, its summary checked."""
    shutil.rmtree(lake, ignore_errors=True)
    command = [sys.executable, "-m", "eventpipe.jobs.cli", "import", str(source)]
    result = measure([*command, "--lake", str(lake), "--connection-id", "1", *extra])
    [summary] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")]
    require(summary["reconciles"] and summary["written"] > 0, f"the import of {source}")
    require(partitioned_rows(lake / "events") == summary["written"], f"events in {lake}")
    return result | {"written": summary["written"], "read": summary["read"]}


def fixed_cost(work: Path) -> dict:
    """The import of one event: the median of 3 runs."""
    one = work / "one.jsonl"
    one.write_text('{"type":"track","event":"x","userId":"u","timestamp":"2026-11-02T10:00:00Z"}\n')
    runs = [import_run(one, work / "lake-one") for _ in range(3)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def same_lake(a: Path, b: Path) -> bool:
    """Whether two lakes hold the same events and failed rows (EXCEPT ALL both ways)."""
    con = duckdb.connect()
    for table, drop in (("events", "date"), ("failed", "date, runId, receivedAt")):
        one, two = (
            f"SELECT * EXCLUDE ({drop}) FROM read_parquet('{lake}/{table}/*/*.parquet', "
            "hive_partitioning=true, union_by_name=true)"
            for lake in (a, b)
        )
        if not list((a / table).glob("*/*.parquet")) + list((b / table).glob("*/*.parquet")):
            continue
        for x, y in ((one, two), (two, one)):
            if con.execute(f"SELECT count(*) FROM (({x}) EXCEPT ALL ({y}))").fetchone()[0]:
                return False
    return True


def row(label: str, events: int, r: dict, floor: dict | None, old: dict | None) -> str:
    rate = events / r["cpu_s"]
    ratio = f"{rate / (events / floor['cpu_s']):.2f}" if floor else ""
    old_ratio = f"{rate / (events / old['cpu_s']):.2f}" if old else ""
    return (
        f"{label:28} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {rate:13,.0f} {ratio:>9} {old_ratio:>9}"
        f" {r['peak_rss_mb']:9,.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="200000", help="comma-separated event counts (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--reuse", action="store_true", help="reuse the inputs in --workdir")
    parser.add_argument(
        "--rss-series", action="store_true", help="peak RSS of the batched import at 1M, 2M, 4M"
    )
    parser.add_argument(
        "--cores", action="store_true", help="the largest flat file on 1 worker vs one per core"
    )
    parser.add_argument(
        "--forms",
        default=",".join(FORMS),
        help="the inputs imported at each size (default %(default)s; '' for none)",
    )
    parser.add_argument("--no-old-floor", action="store_true", help="skip the old floor column")
    parser.add_argument("--no-fixed", action="store_true", help="skip the one-event import")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    require(all(n % BATCH == 0 for n in sizes), f"sizes must be multiples of {BATCH}")
    series = [1_000_000, 2_000_000, 4_000_000] if args.rss_series else []
    work = args.workdir or Path(tempfile.mkdtemp(prefix="eventpipe-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs = prepare(work, sorted({*sizes, *series}), args.seed, args.reuse)
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}; data in {work}")
    header = (
        f"{'run':28} {'wall s':>8} {'CPU s':>8} {'events/CPU-s':>13} {'vs floor':>9}"
        f" {'vs old':>9} {'RSS MB':>9}"
    )
    lines = [header]
    for n in sizes:
        flat = inputs[n]["flat"]
        mb = flat.stat().st_size / 1e6
        floor = measure_floor(flat, work / "floor-lake")
        shutil.rmtree(work / "floor-lake")
        old = None
        if not args.no_old_floor:
            old = measure([sys.executable, "-c", OLD_FLOOR, str(flat), str(work / "old-floor")])
            shutil.rmtree(work / "old-floor")
        lines.append(row(f"{n:,} floor ({mb:,.0f} MB)", n, floor, floor, old))
        if old:
            lines.append(row(f"{n:,} old floor (process)", n, old, floor, old))
        for form in [f for f in args.forms.split(",") if f]:
            r = import_run(inputs[n][form], work / f"lake-{form}")
            lines.append(row(f"{n:,} import {form}", n, r, floor, old))
            print(lines[-1], f"(written {r['written']:,} of {r['read']:,})", flush=True)
    if args.cores:
        n = max(sizes)
        cores = str(os.cpu_count() or 1)
        one = import_run(inputs[n]["flat"], work / "lake-1w", "--workers", "1")
        default = import_run(inputs[n]["flat"], work / "lake-default", "--workers", cores)
        lines.append(row(f"{n:,} flat, 1 worker", n, one, None, None))
        lines.append(row(f"{n:,} flat, {cores} workers", n, default, None, None))
        same = same_lake(work / "lake-1w", work / "lake-default")
        lines.append(
            f"  {cores} workers / 1 worker, wall: {default['wall_s'] / one['wall_s']:.2f}; "
            f"same lake (EXCEPT ALL both ways): {same}"
        )
    for n in series:
        r = import_run(inputs[n]["batches"], work / "lake-rss")
        lines.append(row(f"{n:,} import batches (RSS)", n, r, None, None))
    if not args.no_fixed:
        r = fixed_cost(work)
        lines.append(f"{'1 event (fixed cost, median)':28} {r['wall_s']:8.2f} {r['cpu_s']:8.2f}")
    lines.append(f"load average after: {os.getloadavg()}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
