"""The event collector: seed 000's ingestion endpoints and seed 004's /v1/track, landing
each accepted request durably as an envelope (docs/collector.md)."""
