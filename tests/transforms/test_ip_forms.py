"""IPv6 forms of client IPs through the import stages (issue 11.2): one table, ip_cases."""

from __future__ import annotations

import pytest
from ip_cases import IP_CASES, ip_record

from eventpipe.api.filters import parse_ip
from eventpipe.schemas.ip_addresses import analyse_ip
from eventpipe.transforms.enrich.ip_policy import masked_ip

from pipeline_support import make_event


@pytest.mark.parametrize(
    ("name", "event_ip", "request_ip", "batch_ip", "expected"),
    IP_CASES,
    ids=[c[0] for c in IP_CASES],
)
def test_ip_form_through_the_import_stages(stages, name, event_ip, request_ip, batch_ip, expected):
    out = stages.run(ip_record(make_event(), event_ip, request_ip, batch_ip))
    if expected[0] == "stored":
        assert out.failed == []
        [row] = out.events
        assert (row["context"] or {}).get("ip") == expected[1]
    else:
        assert out.events == []
        [failure] = out.failed
        assert (failure["reason"], failure["field"]) == expected[1:]
        assert "multicast" in failure["message"] and "zone" in failure["message"]


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("::ffff:192.0.2.1", "192.0.2.1"),
        (" ::FFFF:c000:201 ", "192.0.2.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("fe80::1%eth0", None),
        ("::ffff:224.0.0.1", None),
        ("ff02::1", None),
        ("localhost", None),
    ],
)
def test_the_read_api_filters_parse_ips_by_the_same_rule(text, stored):
    if stored is None:
        with pytest.raises(ValueError, match="multicast"):
            parse_ip(text)
    else:
        assert parse_ip(text) == stored


def test_masking_policy_masks_a_mapped_address_as_ipv4():
    assert masked_ip("::ffff:203.0.113.77") == "203.0.113.0"
    assert analyse_ip("::ffff:203.0.113.77").masked_16 == "203.0.0.0"
    assert masked_ip("fe80::1%eth0") is None
