"""The metrics every stage counts, and the outputs of a stage (rows, failed rows counted)."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from eventpipe.schemas.failures import count_by_reason
from eventpipe.schemas.outputs import FAILED_TAG, NAMESPACE, failed_reason_metric


def count_failed(failed: pa.Table) -> None:
    """Add the failed rows to one counter per reason (`failed.<reason>`)."""
    for reason, n in count_by_reason(failed).items():
        Metrics.counter(NAMESPACE, failed_reason_metric(reason)).inc(n)


def emit(main: pa.Table, failed: pa.Table) -> Iterator:
    """A stage's outputs: the main table, and the failed rows (counted) tagged FAILED_TAG."""
    if main.num_rows:
        yield main
    if failed.num_rows:
        count_failed(failed)
        yield beam.pvalue.TaggedOutput(FAILED_TAG, failed)
