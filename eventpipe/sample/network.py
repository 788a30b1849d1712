"""IP addresses for synthetic traffic: public IPv4/IPv6, a few private ones."""

from __future__ import annotations

import ipaddress
import random

# context.ip values with a special meaning in seed 000 (use / mask the request IP, or none)
SPECIAL_IPS = ("255.255.255.255", "255.255.255.0", "255.255.0.0", "0.0.0.0")

# First 16 bits of global unicast IPv6 blocks delegated to the regional registries
# (RIPE 2a00-2a0f, ARIN 2600-260f, APNIC 2400-240f, LACNIC 2800-2804, AFRINIC 2c0f).
_V6_BLOCKS = (
    tuple(range(0x2A00, 0x2A10))
    + tuple(range(0x2600, 0x2610))
    + tuple(range(0x2400, 0x2410))
    + tuple(range(0x2800, 0x2805))
    + (0x2C0F, 0x2003)
)

_PRIVATE_V4 = (
    (ipaddress.IPv4Network("10.0.0.0/8")),
    (ipaddress.IPv4Network("172.16.0.0/12")),
    (ipaddress.IPv4Network("192.168.0.0/16")),
)


def public_ipv4(rng: random.Random) -> str:
    """A globally routable, non-multicast IPv4 address."""
    while True:
        addr = ipaddress.IPv4Address(rng.getrandbits(32))
        if addr.is_global and not addr.is_multicast:
            return str(addr)


def public_ipv6(rng: random.Random) -> str:
    """A global unicast IPv6 address (a registry block, a random interface id)."""
    while True:
        value = (rng.choice(_V6_BLOCKS) << 112) | rng.getrandbits(112)
        if rng.random() < 0.3:  # SLAAC-less servers and CPEs: small interface ids
            value = (value >> 64 << 64) | rng.randint(1, 0xFFFF)
        addr = ipaddress.IPv6Address(value)
        if addr.is_global:
            return addr.compressed


def private_ip(rng: random.Random) -> str:
    """An RFC 1918 address (internal traffic, proxies that forward the wrong header)."""
    net = rng.choice(_PRIVATE_V4)
    return str(net[rng.randint(1, net.num_addresses - 2)])


def client_ip(rng: random.Random) -> str:
    """The request IP of a client: mostly public IPv4, a quarter IPv6, ~1% private."""
    r = rng.random()
    if r < 0.01:
        return private_ip(rng)
    if r < 0.26:
        return public_ipv6(rng)
    return public_ipv4(rng)
