"""The IP forms of issue 11.2 as one table, run through the import stages
(tests/transforms/test_ip_forms.py) and the streaming graph (tests/stream/test_stream_ip_forms.py).

Each case: (name, event context.ip, request IP, batch context.ip, expected), where
expected is ("stored", ip or None) or ("failed", reason, field).
"""

from __future__ import annotations

from typing import Any

REQUEST = "81.2.69.160"

IP_CASES: list[tuple[str, str | None, str | None, str | None, tuple]] = [
    # IPv4-mapped IPv6: an IPv4 client behind a dual-stack socket, stored as IPv4.
    ("mapped", "::ffff:192.0.2.1", None, None, ("stored", "192.0.2.1")),
    ("mapped upper-case hex", "::FFFF:C000:0201", None, None, ("stored", "192.0.2.1")),
    ("mapped long form", "0:0:0:0:0:ffff:192.0.2.1", None, None, ("stored", "192.0.2.1")),
    ("mapped request ip", None, "::ffff:81.2.69.160", None, ("stored", REQUEST)),
    ("mapped batch ip", None, None, "::ffff:192.0.2.7", ("stored", "192.0.2.7")),
    # Special values, in their mapped forms too.
    ("mapped use request", "::ffff:255.255.255.255", REQUEST, None, ("stored", REQUEST)),
    ("mapped mask 24", "::ffff:255.255.255.0", REQUEST, None, ("stored", "81.2.69.0")),
    ("mapped mask 16", "::ffff:255.255.0.0", REQUEST, None, ("stored", "81.2.0.0")),
    ("mapped no ip", "::ffff:0.0.0.0", REQUEST, None, ("stored", None)),
    ("mapped batch no ip", None, REQUEST, "::ffff:0.0.0.0", ("stored", None)),
    ("mask of a mapped request", "255.255.255.0", "::ffff:81.2.69.160", None, ("stored", "81.2.69.0")),
    ("mask 16 of a mapped request", "255.255.0.0", "::ffff:81.2.69.160", None, ("stored", "81.2.0.0")),
    # Plain forms keep working.
    ("ipv4", "192.0.2.9", None, None, ("stored", "192.0.2.9")),
    ("ipv6 canonical", "2001:DB8:0::1", None, None, ("stored", "2001:db8::1")),
    ("ipv6 mask 24", "255.255.255.0", "2001:db8:aaaa:bbbb::1", None, ("stored", "2001:db8:aaaa::")),
    # Not client addresses.
    ("zone-scoped", "fe80::1%eth0", None, None, ("failed", "invalid_value", "context.ip")),
    ("zone-scoped numeric", "fe80::1%1", None, None, ("failed", "invalid_value", "context.ip")),
    ("mapped multicast", "::ffff:224.0.0.1", None, None, ("failed", "invalid_value", "context.ip")),
    ("ipv4 multicast", "239.1.2.3", None, None, ("failed", "invalid_value", "context.ip")),
    ("ipv6 multicast", "ff02::1", None, None, ("failed", "invalid_value", "context.ip")),
    ("request zone-scoped", None, "fe80::1%eth0", None, ("failed", "invalid_envelope", "ip")),
    ("request mapped multicast", None, "::ffff:224.0.0.1", None, ("failed", "invalid_envelope", "ip")),
    ("request ipv6 multicast", None, "ff05::2", None, ("failed", "invalid_envelope", "ip")),
    ("batch zone-scoped", None, None, "fe80::1%eth0", ("failed", "invalid_batch", "context.ip")),
    ("batch mapped multicast", None, None, "::ffff:224.0.0.1", ("failed", "invalid_batch", "context.ip")),
]  # fmt: skip


def ip_record(event: dict[str, Any], event_ip, request_ip, batch_ip) -> dict[str, Any]:
    """An envelope around a batch of `event`, with the case's three IPs (None: absent)."""
    if event_ip is not None:
        event = {**event, "context": {"ip": event_ip}}
    batch: dict[str, Any] = {"batch": [event]}
    if batch_ip is not None:
        batch["context"] = {"ip": batch_ip}
    envelope: dict[str, Any] = {"receivedAt": "2026-11-20T10:00:00Z", "body": batch}
    if request_ip is not None:
        envelope["ip"] = request_ip
    return envelope
