"""The IP privacy policy: keep, mask (IPv4 last octet, IPv6 last 80 bits), drop."""

from __future__ import annotations

import pytest

from eventpipe.transforms.enrich.ip_policy import check_ip_policy, mask_ip


@pytest.mark.parametrize(
    ("ip", "policy", "expected"),
    [
        ("203.0.113.77", "keep", "203.0.113.77"),
        ("203.0.113.77", "mask", "203.0.113.0"),
        ("203.0.113.77", "drop", None),
        ("192.168.45.32", "mask", "192.168.45.0"),
        ("8.8.8.8", "mask", "8.8.8.0"),
        ("10.0.0.0", "mask", "10.0.0.0"),
        ("2001:db8:1:2:3:4:5:6", "keep", "2001:db8:1:2:3:4:5:6"),
        ("2001:db8:1:2:3:4:5:6", "mask", "2001:db8:1::"),
        ("2a02:ff0:1234:5678:9abc:def0:1234:5678", "mask", "2a02:ff0:1234::"),
        ("2001:4860:4860::8888", "mask", "2001:4860:4860::"),
        ("::1", "mask", "::"),
        ("2001:db8:1:2:3:4:5:6", "drop", None),
        ("not an ip", "keep", "not an ip"),
        ("not an ip", "mask", None),
        ("", "mask", None),
        (None, "keep", None),
        (None, "mask", None),
        (None, "drop", None),
    ],
)
def test_mask_ip(ip: str | None, policy: str, expected: str | None) -> None:
    assert mask_ip(ip, policy) == expected


@pytest.mark.parametrize("policy", ["keep", "mask", "drop"])
def test_valid_policies(policy: str) -> None:
    assert check_ip_policy(policy) == policy


@pytest.mark.parametrize("policy", ["", "Mask", "anonymise", "none"])
def test_invalid_policies_name_the_accepted_ones(policy: str) -> None:
    with pytest.raises(ValueError, match="keep, mask, drop"):
        mask_ip("1.2.3.4", policy)
