"""Benchmark: CPU of the import's stages (parse, validate, normalise), in process. Not a test.

Generates N events (`eventpipe generate`), keeps its well-typed events and writes them as
three inputs: flat JSONL (one event per line), 50-event batch documents
(`{"batch": [...], "sentAt"}`) and landing envelopes around those batches. For each input it
reads the file's record chunks as the import does (`io.raw_files.read_record_chunks`) and
runs parse, validate and normalise (the stages of a `StageChain` without enrichment, one
by one), timing each stage's CPU (`time.thread_time`, robust to a shared machine). Beside
them, in the same run: the floor, `pyarrow.json.read_json` (one thread, 16 MiB blocks; the
schema pyarrow infers, without the free-form `properties`/`traits`, on which inference
fails) + `pyarrow.dataset.write_dataset` hive by day of the flat JSONL.

    .venv/bin/python benchmarks/bench_stages.py --events 200000 [--repeat 2] [--workdir DIR]

The whole import (`bench_import.py`) also pays reading, enrichment, deduplication, writing
and Beam; this isolates the stages that check the records.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.json as pj
from bench_import import flatten_events
from measured import require

from eventpipe.io.raw_files import read_record_chunks
from eventpipe.jobs.cli import main as cli
from eventpipe.transforms.chain import StageChain


def write_inputs(jsonl: Path, work: Path, batch: int = 50) -> dict[str, Path]:
    """The flat events as batch documents and as landing envelopes around them."""
    events = jsonl.read_bytes().splitlines()
    batches, envelopes = work / "batches.jsonl", work / "envelopes.jsonl"
    with batches.open("wb") as b, envelopes.open("wb") as e:
        for i in range(0, len(events), batch):
            body = (
                b'{"batch":['
                + b",".join(events[i : i + batch])
                + b'],"sentAt":"2026-11-02T00:00:00Z"}'
            )
            b.write(body + b"\n")
            head = orjson.dumps(
                {"receivedAt": "2026-11-02T00:00:01Z", "ip": "81.2.69.160", "connectionId": 7}
            )
            e.write(head[:-1] + b',"body":' + body + b"}\n")
    return {"jsonl": jsonl, "batches": batches, "envelopes": envelopes}


def floor_schema(jsonl: Path, work: Path) -> pa.Schema:
    """The schema pyarrow infers for the events without their free-form `properties` and
    `traits` (whose values change type from event to event: inference fails on them)."""
    fixed = work / "floor-schema.jsonl"
    with fixed.open("wb") as out:
        for line in jsonl.open("rb"):
            event = orjson.loads(line)
            event.pop("properties", None)
            event.pop("traits", None)
            out.write(orjson.dumps(event) + b"\n")
    return pj.read_json(fixed, read_options=pj.ReadOptions(use_threads=False)).schema


def floor(jsonl: Path, schema: pa.Schema, out: Path) -> float:
    """CPU seconds of the floor: read_json (the inferred `schema`, the free-form fields left
    out; 1 thread, 16 MiB blocks) + write_dataset hive by day."""
    start = time.thread_time()
    table = pj.read_json(
        jsonl,
        read_options=pj.ReadOptions(use_threads=False, block_size=16 << 20),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
    )
    ts = table["timestamp"]
    if not pa.types.is_timestamp(ts.type):
        ts = pc.strptime(pc.utf8_slice_codeunits(ts, 0, 19), format="%Y-%m-%dT%H:%M:%S", unit="s")
    table = table.append_column("date", pc.strftime(ts, format="%Y-%m-%d"))
    ds.write_dataset(
        table,
        out,
        format="parquet",
        partitioning=["date"],
        partitioning_flavor="hive",
        use_threads=False,
        existing_data_behavior="overwrite_or_ignore",
    )
    return time.thread_time() - start


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
    corpus, jsonl = work / "corpus", work / "events.jsonl"
    if not jsonl.exists():
        with contextlib.redirect_stdout(io.StringIO()):  # the generator's own summary
            options = f"--events {args.events} --seed {args.seed}".split()
            cli(["generate", *options, "--out", str(corpus)])
        flatten_events(corpus, jsonl)
    inputs = write_inputs(jsonl, work)
    n = sum(1 for _ in jsonl.open("rb"))
    require(n > 0, "no event")
    print(f"{n:,} events; load average {os.getloadavg()[0]:.1f}")
    print(
        f"{'input':10} {'events':>8} {'read':>6} {'parse':>6} {'valid.':>6} {'norm.':>6}"
        f" {'ev/CPU-s (3 stages)':>20} {'floor ev/CPU-s':>15}"
    )
    schema = floor_schema(jsonl, work)
    for _ in range(args.repeat):
        floor_rate = n / floor(jsonl, schema, work / "floor-lake")
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
