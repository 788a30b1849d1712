"""The filter language of the read APIs: one parse into a typed tree (`tree`), one SQL
renderer (`sql`) over a dialect per engine (`duckdb_dialect`, `bigquery_dialect`)."""
