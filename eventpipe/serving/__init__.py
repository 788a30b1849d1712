"""The serving index of the read API: built by compaction, read by the API."""
