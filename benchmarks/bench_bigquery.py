"""Benchmark the BigQuery sink's own work per bundle: row checks and the Parquet load file.

    python benchmarks/bench_bigquery.py --events 200000 [--endpoint http://127.0.0.1:9050]

Real event rows come from a generated corpus imported into a temporary lake (the rows
are then repeated up to --events). Measured, per 100k-row bundle as the sink runs it:
`check_rows` (REQUIRED values, TIMESTAMP range, strict JSON), building the Parquet file
(JSON columns with Parquet's JSON type), and, with --endpoint (an emulator, or Google's
API with credentials), the load job itself into a fresh table.

With --endpoint and --import-events N, also the whole job end to end: `eventpipe import
--sink bigquery` of a generated corpus of N events (DirectRunner, in this process), run
twice into one fresh table: the first run writes it, the second re-imports the same
files (every event a duplicate of a stored one). Reported: events/s and the CPU seconds
of this process (the emulator's own CPU is not counted).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
from measured import require

from eventpipe.core.duck import connect
from eventpipe.io.bigquery.rows import check_rows
from eventpipe.io.bigquery.tables import (
    FLUSH_ROWS,
    BigQueryTarget,
    load_parquet,
    parquet_bytes,
    prepare_tables,
)
from eventpipe.jobs.cli import main
from eventpipe.sample.generator import generate
from eventpipe.schemas.bigquery_schema import load_arrow_schema


def sample_rows(events: int, work: Path) -> pa.Table:
    generate(work / "corpus", events=min(events, 50_000), seed=1, units_per_file=10_000)
    assert main(["import", str(work / "corpus" / "*"), "--lake", str(work / "lake")]) == 0
    rows = ds.dataset(work / "lake" / "events", format="parquet", partitioning="hive")
    table = rows.to_table().drop_columns(["date"])
    copies = -(-events // table.num_rows)
    return pa.concat_tables([table] * copies).slice(0, events).combine_chunks()


def timed(label: str, rows: int, fn) -> object:
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    print(f"  {label:<28} {seconds:7.2f} s   {rows / seconds:>12,.0f} rows/s")
    return out


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_import_job(events: int, endpoint: str, project: str, work: Path) -> None:
    """`eventpipe import --sink bigquery` of one corpus, twice, into a fresh table."""
    manifest = generate(work / "import", events=events, seed=3, units_per_file=10_000)
    dataset = f"{project}.bench_{uuid.uuid4().hex[:8]}"
    target = BigQueryTarget(table=f"{dataset}.events", endpoint=endpoint)
    client = target.client()
    client.create_dataset(dataset)
    args = ["import", str(work / "import" / "*"), "--sink", "bigquery"]
    args += ["--bq-table", target.table, "--bq-endpoint", endpoint]
    try:
        for label in ("import", "import again"):
            cpu, start = cpu_seconds(), time.perf_counter()
            assert main(args) == 0
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
            read = manifest["read_units"]
            print(
                f"  {label:<28} {seconds:7.2f} s   {read / seconds:>12,.0f} events/s"
                f"   {cpu:7.2f} CPU-s   {read / cpu:>10,.0f} events/CPU-s"
            )
    finally:
        client.delete_dataset(dataset, delete_contents=True)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--endpoint", help="BigQuery API endpoint to also run load jobs against")
    parser.add_argument("--project", default="test-project")
    parser.add_argument(
        "--import-events", type=int, default=0, help="with --endpoint: also time the import job"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = sample_rows(args.events, Path(tmp))
    con = connect()
    run_start = dt.datetime.now(dt.UTC)
    require(table.num_rows > 0, "no sample event")
    bundles = [table.slice(i, FLUSH_ROWS) for i in range(0, table.num_rows, FLUSH_ROWS)]
    print(f"{table.num_rows:,} events in {len(bundles)} bundles of up to {FLUSH_ROWS:,} rows")
    good = timed(
        "check_rows",
        table.num_rows,
        lambda: [check_rows(b, con, "bench", run_start)[0] for b in bundles],
    )
    files = timed(
        "Parquet load files",
        table.num_rows,
        lambda: [parquet_bytes(g.cast(load_arrow_schema())) for g in good],
    )
    print(f"  Parquet bytes per event: {sum(map(len, files)) / table.num_rows:.0f}")
    if args.endpoint:
        dataset = f"{args.project}.bench_{uuid.uuid4().hex[:8]}"
        target = BigQueryTarget(table=f"{dataset}.events", endpoint=args.endpoint)
        client = target.client()
        client.create_dataset(dataset)
        try:
            prepare_tables(target, client)
            timed(
                "load jobs",
                table.num_rows,
                lambda: [
                    load_parquet(client, target.table, data, f"bench_{uuid.uuid4().hex}")
                    for data in files
                ],
            )
        finally:
            client.delete_dataset(dataset, delete_contents=True)
        if args.import_events:
            print(f"import job, {args.import_events:,} events generated (duplicates included)")
            with tempfile.TemporaryDirectory() as tmp:
                bench_import_job(args.import_events, args.endpoint, args.project, Path(tmp))


if __name__ == "__main__":
    main_bench()
