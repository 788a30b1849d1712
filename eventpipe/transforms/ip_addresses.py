"""IP addresses: validity, canonical form and the masks of seed 000's special values.

The stages call `analyse_ip` through DuckDB functions (`duck.register_ip_functions`)
that run once per distinct address.
"""

from __future__ import annotations

import ipaddress

# Seed 000's special values of context.ip.
USE_REQUEST_IP = "255.255.255.255"
MASK_LAST_OCTET = "255.255.255.0"
MASK_LAST_TWO_OCTETS = "255.255.0.0"
NO_IP = "0.0.0.0"


def _masked(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, v4_bits: int, v6_bits: int) -> str:
    bits = v4_bits if addr.version == 4 else v6_bits
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False).network_address)


def analyse_ip(value: str) -> tuple[bool, str | None, str | None, str | None]:
    """(acceptable, canonical form, masked like 255.255.255.0, masked like 255.255.0.0).

    Acceptable means valid IPv4/IPv6 syntax and not multicast. The masks keep
    the first 3 / 2 octets of an IPv4 address; for IPv6 they keep the first
    48 / 32 bits (the last 80 / 96 bits become zero).
    """
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False, None, None, None
    if addr.is_multicast:
        return False, None, None, None
    return True, str(addr), _masked(addr, 24, 48), _masked(addr, 16, 32)
