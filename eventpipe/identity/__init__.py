"""Identity resolution over a whole lake: build the graph, persist it, stitch kpids.

The rules are `eventpipe.identity.rules` (the specification); `graph` builds
the same profiles over a whole lake in DuckDB SQL (`rules_sql`: the rules as SQL),
`store` keeps `LAKE/identity/` consistent, `stitch` fills `kpid` into events.
"""

from eventpipe.identity.graph import IdentityResult, build_identity, identity_connection
from eventpipe.identity.stitch import assign_kpids
from eventpipe.identity.store import (
    read_identity,
    read_kpid_map,
    write_identity,
)

__all__ = [
    "IdentityResult",
    "assign_kpids",
    "build_identity",
    "identity_connection",
    "read_identity",
    "read_kpid_map",
    "write_identity",
]
