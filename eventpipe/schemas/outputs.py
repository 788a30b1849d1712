"""What a stage puts out besides its rows: the tags of its Beam outputs and the metrics it
counts (one namespace; the run summary reads them back).

The output tags name PCollections; the lake's tables (`io.lake.EVENTS`, `FAILED`, `RAW`)
are named apart, though the failed output and the failed table are both "failed".
"""

from __future__ import annotations

MAIN_TAG = "main"
FAILED_TAG = "failed"

NAMESPACE = "eventpipe"
"""The Beam metrics namespace of every counter below."""
READ = "read"  # records (batch) or messages' records (stream) read
WRITTEN = "written"  # events written
FAILED_ROWS = "failed"  # failed rows written (and `failed.<reason>`, one counter per reason)
DUPLICATES = "duplicates"  # events dropped as duplicates
BOTS = "bots"  # events dropped by --drop-bots
LATE = "late"  # streamed events written after their window closed
MESSAGES = "messages"  # Pub/Sub messages read
DAMAGED_FILES = "damaged_files"  # input files that could not be read to their end
KPID_MAP_LOADS = "kpid_map.loads"  # times a stream re-read the kpid map
KPIDS_CHANGED = "kpids_changed"  # events whose kpid the identity job changed
PARTITIONS_REWRITTEN = "partitions_rewritten"  # partitions the identity job rewrote


FAILED_REASON_PREFIX = f"{FAILED_ROWS}."


def failed_reason_metric(reason: str) -> str:
    """The counter of the failed rows of one reason."""
    return FAILED_REASON_PREFIX + reason


def files_metric(table: str) -> str:
    """The counter of the files a stream wrote to one lake table."""
    return f"files.{table}"
