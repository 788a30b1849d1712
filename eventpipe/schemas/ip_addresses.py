"""IP addresses: which are client addresses, their stored form and seed 000's masks.

One rule for every reader of an IP: the import and stream stages (through the DuckDB
functions of `core.duck.register_ip_functions`, once per distinct address) and
the read API's filters.

- An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, a client behind a dual-stack
  socket) is the IPv4 address: stored, masked, geolocated and compared with the
  special values as `192.0.2.1`.
- Not client addresses, so rejected: anything `ipaddress` cannot parse, a
  zone-scoped address (`fe80::1%eth0`), and multicast in any form (`224.0.0.1`,
  `ff02::1`, `::ffff:224.0.0.1`).
- Stored form: `ipaddress`'s canonical text (lower case, shortest IPv6).
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

# Seed 000's special values of context.ip.
USE_REQUEST_IP = "255.255.255.255"
MASK_LAST_OCTET = "255.255.255.0"
MASK_LAST_TWO_OCTETS = "255.255.0.0"
NO_IP = "0.0.0.0"

IP_RULE = "an IPv4 or IPv6 address, not multicast and without a zone (%...)"
"""What an acceptable address is, for messages."""


class IpForms(NamedTuple):
    acceptable: bool
    canonical: str | None
    masked_24: str | None  # masked like 255.255.255.0
    masked_16: str | None  # masked like 255.255.0.0


_REJECTED = IpForms(False, None, None, None)


def client_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client address `value` stands for (IPv4-mapped -> IPv4), or None when it is
    not one (see the module's rule)."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:
            return None
        addr = addr.ipv4_mapped or addr
    return None if addr.is_multicast else addr


def _masked(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, v4_bits: int, v6_bits: int) -> str:
    bits = v4_bits if addr.version == 4 else v6_bits
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False).network_address)


def analyse_ip(value: str) -> IpForms:
    """Whether `value` is acceptable, its canonical form and its two masks.

    The masks keep the first 3 / 2 octets of an IPv4 address; for IPv6 they keep the
    first 48 / 32 bits (the last 80 / 96 bits become zero).
    """
    addr = client_address(value)
    if addr is None:
        return _REJECTED
    return IpForms(True, str(addr), _masked(addr, 24, 48), _masked(addr, 16, 32))
