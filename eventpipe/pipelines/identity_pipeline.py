"""The re-stitch graph: event partitions -> the same rows with the current kpids.

One element per date partition. A partition whose kpids all stay the same is left
alone; the others are rewritten file by file into a staged folder and swapped in
whole at the end in one lake transaction (io.lake_transaction), so a reader sees a partition with the old
kpids or with the new ones, never a mix, and a killed run changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from eventpipe.core.duck import connect
from eventpipe.identity.stitch import KpidStitcher
from eventpipe.identity.store import current_kpid_map
from eventpipe.io.lake import EVENTS, lake_path, read_parquet, write_parquet
from eventpipe.io.lake_transaction import SUMMARY, LakeTransaction
from eventpipe.schemas.outputs import KPIDS_CHANGED, NAMESPACE, PARTITIONS_REWRITTEN, READ


class _RestitchPartition(beam.DoFn):
    """A partition name (`date=D`) -> itself, when its staged copy has new kpids."""

    def __init__(self, lake: str, run_id: str) -> None:
        self.lake = lake
        self.run_id = run_id

    def setup(self) -> None:
        self.con = connect()
        self.stitcher = KpidStitcher(current_kpid_map(self.lake)).bind(self.con)
        self.read = Metrics.counter(NAMESPACE, READ)
        self.changed = Metrics.counter(NAMESPACE, KPIDS_CHANGED)
        self.rewritten = Metrics.counter(NAMESPACE, PARTITIONS_REWRITTEN)

    def teardown(self) -> None:
        self.con.close()

    def process(self, partition: str) -> Iterator[str]:
        pattern = lake_path(self.lake, EVENTS, partition, "*.parquet")
        paths = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
        stitched, changed = [], 0
        for path in paths:
            events = read_parquet(path)
            new = self.stitcher.stitch(events)
            same = pc.fill_null(pc.equal(events["kpid"], new["kpid"]), False)
            both_null = pc.and_(pc.is_null(events["kpid"]), pc.is_null(new["kpid"]))
            changed += events.num_rows - pc.sum(pc.or_(same, both_null)).as_py()
            stitched.append(new)
            self.read.inc(events.num_rows)
        if not changed:
            return
        folder = LakeTransaction(self.lake, self.run_id).replace_partition(EVENTS, partition)
        for number, table in enumerate(stitched):
            name = f"part-{self.run_id}-{number:05d}.parquet"
            write_parquet(table, lake_path(folder, name), event_table=True)
        self.changed.inc(changed)
        self.rewritten.inc(1)
        yield partition


class _SwapPartitions(beam.DoFn):
    def __init__(self, lake: str, run_id: str) -> None:
        self.lake = lake
        self.run_id = run_id

    def process(self, partitions: list[str]) -> Iterator[int]:
        txn = LakeTransaction(self.lake, self.run_id)
        for partition in sorted(partitions):
            txn.replace_partition(EVENTS, partition)
        txn.record(SUMMARY, {"partitions_rewritten": len(partitions)})
        txn.commit()
        yield len(partitions)


def build_restitch_pipeline(
    pipeline: beam.Pipeline, lake: str, run_id: str, partitions: list[str]
) -> None:
    """Add the re-stitch graph over `partitions` (`date=D` names) to `pipeline`."""
    _ = (
        pipeline
        | "Partitions" >> beam.Create(partitions)
        | "Restitch" >> beam.ParDo(_RestitchPartition(lake, run_id))
        | "Changed" >> beam.combiners.ToList()
        | "Swap" >> beam.ParDo(_SwapPartitions(lake, run_id))
    )
