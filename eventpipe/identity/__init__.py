"""Identity resolution over a whole lake: build the graph, persist it, stitch kpids.

The rules are `eventpipe.transforms.identity_rules`; the SQL build is
`eventpipe.transforms.identity_graph`; `store` keeps `LAKE/identity/` consistent.
"""

from eventpipe.identity.store import read_identity, read_kpid_map, recover_identity, write_identity
from eventpipe.transforms.identity_graph import (
    IdentityResult,
    assign_kpids,
    build_identity,
    identity_connection,
)

__all__ = [
    "IdentityResult",
    "assign_kpids",
    "build_identity",
    "identity_connection",
    "read_identity",
    "read_kpid_map",
    "recover_identity",
    "write_identity",
]
