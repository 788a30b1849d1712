"""Adapters of the seed 001-003 query APIs over the read API's one query core.

Each module translates its seed's request into a seed-000 filter document (compiled by
`eventpipe.api.filters.compile_filter` in the reader's dialect) and an `EventQuery`,
answered by the backend's `list_events` / `count_events`, and shapes the rows into its
seed's response. `register(app, reader, authenticator, catalog, lake)` adds a seed's
routes to the serve app (`eventpipe.api.app.create_app`). Field mappings: docs/seed-apis.md.
"""
