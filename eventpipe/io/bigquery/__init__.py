"""The BigQuery sink: tables and load jobs (`tables`), row checks (`rows`), staging and
deduplication (`staged`), the Beam writers (`writers`) and the `Sink` (`sink`)."""
