"""The run summary every job prints and records: read = written + failed (+ duplicates)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult

from eventpipe.transforms.failures import INVALID_FILE
from eventpipe.transforms.stages import NAMESPACE

EXIT_MISMATCH = 1  # records read are not all accounted for
EXIT_DAMAGED_INPUT = 3  # every record read is accounted for, but some files could not be read whole


@dataclass
class RunSummary:
    """Counts of one run, from the pipeline's metrics."""

    run_id: str
    read: int = 0
    written: int = 0
    failed: int = 0
    duplicates: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    files: int = 0
    seconds: float = 0.0

    @property
    def reconciles(self) -> bool:
        """Whether every record read is accounted for."""
        return self.read == self.written + self.failed + self.duplicates

    @property
    def damaged_files(self) -> int:
        """Files that could not be read to their end (failed rows `invalid_file`)."""
        return self.failed_by_reason.get(INVALID_FILE, 0)

    def exit_code(self) -> int:
        """0 when every record is accounted for and every file was read whole."""
        if not self.reconciles:
            return EXIT_MISMATCH
        return EXIT_DAMAGED_INPUT if self.damaged_files else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "reconciles": self.reconciles, "damaged_files": self.damaged_files}

    def lines(self) -> list[str]:
        """The human summary."""
        status = "OK" if self.reconciles else "MISMATCH"
        if self.reconciles and self.damaged_files:
            status = f"INCOMPLETE: damaged or unreadable files: {self.damaged_files:,}"
        out = [
            f"run {self.run_id}: {self.files} files in {self.seconds:.1f}s",
            f"  read {self.read:,} = written {self.written:,} + failed {self.failed:,}"
            f" + duplicates {self.duplicates:,}   [{status}]",
        ]
        for reason, n in sorted(self.failed_by_reason.items(), key=lambda kv: -kv[1]):
            out.append(f"    failed {reason}: {n:,}")
        return out


def summary_from_metrics(result: PipelineResult, run_id: str) -> RunSummary:
    """Read the eventpipe counters of a finished pipeline."""
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    values: dict[str, int] = {}
    for c in counters:
        values[c.key.metric.name] = values.get(c.key.metric.name, 0) + (
            c.committed or c.attempted or 0
        )
    summary = RunSummary(run_id)
    summary.read = values.get("read", 0)
    summary.written = values.get("written", 0)
    summary.failed = values.get("failed", 0)
    summary.duplicates = values.get("duplicates", 0)
    summary.failed_by_reason = {
        k.removeprefix("failed."): v for k, v in values.items() if k.startswith("failed.")
    }
    return summary
