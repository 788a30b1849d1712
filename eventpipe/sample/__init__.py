"""Synthetic raw event input for demos, benchmarks and end-to-end tests.

`generate(out_dir, events, seed)` writes realistic raw batches in every input
form the importer accepts, with ~3% deliberately invalid read units of every
failure reason and ~1% duplicates, plus `_manifest.json` with the exact counts
an import of the directory must reproduce. See `generator` for the formats.
"""

from eventpipe.sample.generator import DEFAULT_BASE_DATE, MANIFEST, generate, plan_files
from eventpipe.sample.invalid import EVENT_REASONS, REASONS, RECORD_REASONS

__all__ = [
    "DEFAULT_BASE_DATE",
    "EVENT_REASONS",
    "MANIFEST",
    "REASONS",
    "RECORD_REASONS",
    "generate",
    "plan_files",
]
