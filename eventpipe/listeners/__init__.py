"""Event listeners (seed 000): live views of the events the collector accepts, for
debugging a tracking plan (docs/listeners.md).

`store` keeps listeners and their captured events in a SQLite file beside the catalog,
shared by every process of the lake; `tap` is the collector's hook (a cheap lookup per
request, capture on a worker thread); `matching` runs the read API's filter compiler over
the accepted events; `routes` are the three endpoints of the read API.
"""
