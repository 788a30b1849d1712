"""The run summary every job prints and records: read = written + failed (+ duplicates)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult

from eventpipe.schemas.outputs import (
    DAMAGED_FILES,
    DUPLICATES,
    FAILED_REASON_PREFIX,
    FAILED_ROWS,
    LATE,
    MESSAGES,
    NAMESPACE,
    READ,
    WRITTEN,
)

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
    messages: int | None = None  # a stream's Pub/Sub messages (None: a job that reads files)
    late: int = 0  # a stream's events written after their window closed (part of `written`)
    # Files that could not be read to their end (each also a failed row `invalid_file`,
    # which a re-run counts as a duplicate: the file is still reported damaged).
    damaged_files: int = 0

    @property
    def reconciles(self) -> bool:
        """Whether every record read is accounted for."""
        return self.read == self.written + self.failed + self.duplicates

    def exit_code(self) -> int:
        """0 when every record is accounted for and every file was read whole."""
        if not self.reconciles:
            return EXIT_MISMATCH
        return EXIT_DAMAGED_INPUT if self.damaged_files else 0

    def to_dict(self) -> dict:
        return {**asdict(self), "reconciles": self.reconciles}

    def lines(self) -> list[str]:
        """The human summary."""
        status = "OK" if self.reconciles else "MISMATCH"
        if self.reconciles and self.damaged_files:
            status = f"INCOMPLETE: damaged or unreadable files: {self.damaged_files:,}"
        read_from = (
            f"{self.files} files"
            if self.messages is None
            else f"{self.messages:,} messages, {self.read:,} events"
        )
        out = [
            f"run {self.run_id}: {read_from} in {self.seconds:.1f}s",
            f"  read {self.read:,} = written {self.written:,} + failed {self.failed:,}"
            f" + duplicates {self.duplicates:,}   [{status}]",
        ]
        if self.messages is not None:
            out.append(f"    written late: {self.late:,} (window closed; in their day's partition)")
        for reason, n in sorted(self.failed_by_reason.items(), key=lambda kv: -kv[1]):
            if n:  # (a reason whose rows the lake held already counts 0: they are duplicates)
                out.append(f"    failed {reason}: {n:,}")
        return out


def summary_from_metrics(
    result: PipelineResult, run_id: str, streaming: bool = False
) -> RunSummary:
    """Read the eventpipe counters of a finished pipeline (a stream's: with messages, late)."""
    counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    values: dict[str, int] = {}
    for c in counters:
        values[c.key.metric.name] = values.get(c.key.metric.name, 0) + (
            c.committed or c.attempted or 0
        )
    summary = RunSummary(run_id)
    summary.read = values.get(READ, 0)
    summary.written = values.get(WRITTEN, 0)
    summary.failed = values.get(FAILED_ROWS, 0)
    summary.duplicates = values.get(DUPLICATES, 0)
    summary.damaged_files = values.get(DAMAGED_FILES, 0)
    if streaming:
        summary.messages = values.get(MESSAGES, 0)
        summary.late = values.get(LATE, 0)
    summary.failed_by_reason = {
        k.removeprefix(FAILED_REASON_PREFIX): v
        for k, v in values.items()
        if k.startswith(FAILED_REASON_PREFIX)
    }
    return summary
