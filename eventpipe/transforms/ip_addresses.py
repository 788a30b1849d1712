"""IP addresses, checked and masked once per distinct value (not once per event)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import pyarrow as pa

# Seed 000's special values of context.ip.
USE_REQUEST_IP = "255.255.255.255"
MASK_LAST_OCTET = "255.255.255.0"
MASK_LAST_TWO_OCTETS = "255.255.0.0"
NO_IP = "0.0.0.0"
SPECIAL_VALUES = frozenset({USE_REQUEST_IP, MASK_LAST_OCTET, MASK_LAST_TWO_OCTETS, NO_IP})

IP_TABLE_SCHEMA = pa.schema(
    [
        ("ip", pa.string()),
        ("ok", pa.bool_()),
        ("canonical", pa.string()),
        ("masked_24", pa.string()),
        ("masked_16", pa.string()),
    ]
)


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


def ip_table(values: Iterable[str | None]) -> pa.Table:
    """One row per distinct non-null value, with what `analyse_ip` says of it."""
    distinct = sorted({v for v in values if v is not None})
    rows = [analyse_ip(v) for v in distinct]
    return pa.table(
        [
            pa.array(distinct, pa.string()),
            pa.array([r[0] for r in rows], pa.bool_()),
            pa.array([r[1] for r in rows], pa.string()),
            pa.array([r[2] for r in rows], pa.string()),
            pa.array([r[3] for r in rows], pa.string()),
        ],
        schema=IP_TABLE_SCHEMA,
    )
