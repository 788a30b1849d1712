"""The operator's IP privacy policy: keep, mask or drop stored addresses.

Applied after geolocation, so locations stay exact while stored IPs do not.
Masking zeroes the last octet of an IPv4 address and the last 80 bits of an
IPv6 address.
"""

from __future__ import annotations

from functools import lru_cache

from eventpipe.schemas.ip_addresses import analyse_ip

KEEP = "keep"
MASK = "mask"
DROP = "drop"
IP_POLICIES = (KEEP, MASK, DROP)


def check_ip_policy(policy: str) -> str:
    """The policy if valid, else ValueError naming the accepted values."""
    if policy not in IP_POLICIES:
        raise ValueError(f"ip policy must be one of {', '.join(IP_POLICIES)}, not {policy!r}")
    return policy


@lru_cache(maxsize=65_536)
def masked_ip(ip: str) -> str | None:
    """`ip` with its last IPv4 octet / last 80 IPv6 bits zeroed (seed 000's 255.255.255.0
    mask, `schemas.ip_addresses`); None if it is not a client address."""
    return analyse_ip(ip.strip()).masked_24


def mask_ip(ip: str | None, policy: str) -> str | None:
    """The address to store under `policy` (keep | mask | drop).

    mask: "203.0.113.77" -> "203.0.113.0", "2001:db8:1:2:3:4:5:6" -> "2001:db8:1::";
    an address that cannot be parsed is not stored when masking.
    """
    check_ip_policy(policy)
    if ip is None or policy == DROP:
        return None
    if policy == KEEP:
        return ip
    return masked_ip(ip)
