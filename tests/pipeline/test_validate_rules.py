"""Every validation rule of seed 000, one table row each: event in, reason and field out."""

from __future__ import annotations

import pytest

from pipeline_support import make_event

# (case, event, reason, field) — field None means the event is valid.
CASES = [
    ("valid track", make_event(), None, None),
    (
        "valid page",
        make_event(type="page", event=..., properties={}, category="Docs", name="Home"),
        None,
        None,
    ),
    ("valid screen", make_event(type="screen", event=..., name="Home"), None, None),
    (
        "valid identify",
        make_event(type="identify", event=..., properties=..., userId="u1", traits={"plan": "pro"}),
        None,
        None,
    ),
    (
        "valid group",
        make_event(type="group", event=..., properties=..., groupId="g1", traits={}),
        None,
        None,
    ),
    (
        "valid alias",
        make_event(type="alias", event=..., properties=..., userId="u1", previousId="p1"),
        None,
        None,
    ),
    ("userId only", make_event(anonymousId=..., userId="u1"), None, None),
    (
        "null optional values count as absent",
        make_event(category=None, groupId=None, messageId=None),
        None,
        None,
    ),
    (
        "unknown properties are ignored",
        make_event(integrations={"All": True}, version=2),
        None,
        None,
    ),
    ("missing type", make_event(type=...), "missing_property", "type"),
    ("null type", make_event(type=None), "missing_property", "type"),
    ("type not a string", make_event(type=5), "invalid_type", "type"),
    ("unknown type", make_event(type="view"), "invalid_value", "type"),
    ("track without event", make_event(event=...), "missing_property", "event"),
    (
        "identify without userId",
        make_event(type="identify", event=..., properties=...),
        "missing_property",
        "userId",
    ),
    (
        "alias without userId",
        make_event(type="alias", event=..., properties=..., previousId="p"),
        "missing_property",
        "userId",
    ),
    (
        "alias without previousId",
        make_event(type="alias", event=..., properties=..., userId="u"),
        "missing_property",
        "previousId",
    ),
    (
        "group without groupId",
        make_event(type="group", event=..., properties=...),
        "missing_property",
        "groupId",
    ),
    ("no anonymousId nor userId", make_event(anonymousId=...), "missing_property", "anonymousId"),
    (
        "null anonymousId and userId",
        make_event(anonymousId=None, userId=None),
        "missing_property",
        "anonymousId",
    ),
    (
        "originalTimestamp without timestamp",
        make_event(timestamp=..., originalTimestamp="2026-01-01T00:00:00Z"),
        "missing_property",
        "timestamp",
    ),
    ("event on page", make_event(type="page", properties={}), "property_not_permitted", "event"),
    ("groupId on track", make_event(groupId="g"), "property_not_permitted", "groupId"),
    (
        "previousId on identify",
        make_event(type="identify", event=..., properties=..., userId="u", previousId="p"),
        "property_not_permitted",
        "previousId",
    ),
    (
        "category on screen",
        make_event(type="screen", event=..., category="c"),
        "property_not_permitted",
        "category",
    ),
    ("name on track", make_event(name="n"), "property_not_permitted", "name"),
    (
        "properties on identify",
        make_event(type="identify", event=..., userId="u"),
        "property_not_permitted",
        "properties",
    ),
    ("traits on track", make_event(traits={"a": 1}), "property_not_permitted", "traits"),
    (
        "traits on page",
        make_event(type="page", event=..., traits={}),
        "property_not_permitted",
        "traits",
    ),
    ("empty anonymousId", make_event(anonymousId=""), "invalid_value", "anonymousId"),
    ("empty userId", make_event(userId=""), "invalid_value", "userId"),
    ("empty event", make_event(event=""), "invalid_value", "event"),
    ("anonymousId a number", make_event(anonymousId=7), "invalid_type", "anonymousId"),
    ("userId an object", make_event(userId={"id": 1}), "invalid_type", "userId"),
    ("messageId a number", make_event(messageId=1), "invalid_type", "messageId"),
    ("channel a boolean", make_event(channel=True), "invalid_type", "channel"),
    ("properties an array", make_event(properties=[1, 2]), "invalid_type", "properties"),
    ("properties a string", make_event(properties="{}"), "invalid_type", "properties"),
    ("context a string", make_event(context="x"), "invalid_type", "context"),
    ("context.page a list", make_event(context={"page": []}), "invalid_type", "context.page"),
    (
        "context.page.url a number",
        make_event(context={"page": {"url": 1}}),
        "invalid_type",
        "context.page.url",
    ),
    (
        "context.device.adTrackingEnabled a string",
        make_event(context={"device": {"adTrackingEnabled": "yes"}}),
        "invalid_type",
        "context.device.adTrackingEnabled",
    ),
    (
        "context.location.latitude a string",
        make_event(context={"location": {"latitude": "45.1"}}),
        "invalid_type",
        "context.location.latitude",
    ),
    ("timestamp not a datetime", make_event(timestamp="yesterday"), "invalid_value", "timestamp"),
    ("timestamp a number", make_event(timestamp=1700000000), "invalid_type", "timestamp"),
    (
        "timestamp year 0",
        make_event(timestamp="0000-01-01T00:00:00Z"),
        "invalid_value",
        "timestamp",
    ),
    (
        "timestamp year 10000",
        make_event(timestamp="10000-01-01T00:00:00Z"),
        "invalid_value",
        "timestamp",
    ),
    (
        "timestamp day 30 of February",
        make_event(timestamp="2026-02-30T00:00:00Z"),
        "invalid_value",
        "timestamp",
    ),
    ("sentAt bad", make_event(sentAt="2026-13-01T00:00:00Z"), "invalid_value", "sentAt"),
    (
        "originalTimestamp bad",
        make_event(originalTimestamp="now"),
        "invalid_value",
        "originalTimestamp",
    ),
    ("receivedAt bad", make_event(receivedAt="later"), "invalid_value", "receivedAt"),
    ("timestamp year 1 ok", make_event(timestamp="0001-01-01T00:00:00Z"), None, None),
    ("timestamp with offset ok", make_event(timestamp="2026-11-20T10:00:00+02:00"), None, None),
    ("timestamp date only ok", make_event(timestamp="2026-11-20"), None, None),
    (
        "screen width 0",
        make_event(context={"screen": {"width": 0}}),
        "invalid_value",
        "context.screen.width",
    ),
    (
        "screen width 32768",
        make_event(context={"screen": {"width": 32768}}),
        "invalid_value",
        "context.screen.width",
    ),
    (
        "screen width 32767 ok",
        make_event(context={"screen": {"width": 32767, "height": 1}}),
        None,
        None,
    ),
    (
        "screen height float",
        make_event(context={"screen": {"height": 1.5}}),
        "invalid_type",
        "context.screen.height",
    ),
    (
        "screen height string",
        make_event(context={"screen": {"height": "100"}}),
        "invalid_type",
        "context.screen.height",
    ),
    (
        "density negative",
        make_event(context={"screen": {"density": -1}}),
        "invalid_value",
        "context.screen.density",
    ),
    (
        "density zero",
        make_event(context={"screen": {"density": 0}}),
        "invalid_value",
        "context.screen.density",
    ),
    (
        "density 3 decimals ok (rounded)",
        make_event(context={"screen": {"density": 1.234}}),
        None,
        None,
    ),
    (
        "density 9.995 rounds to 10",
        make_event(context={"screen": {"density": 9.995}}),
        "invalid_value",
        "context.screen.density",
    ),
    (
        "density 0.004 rounds to 0",
        make_event(context={"screen": {"density": 0.004}}),
        "invalid_value",
        "context.screen.density",
    ),
    (
        "density 1e40",
        make_event(context={"screen": {"density": 1e40}}),
        "invalid_value",
        "context.screen.density",
    ),
    (
        "density a string",
        make_event(context={"screen": {"density": "1.5"}}),
        "invalid_type",
        "context.screen.density",
    ),
    (
        "density 10",
        make_event(context={"screen": {"density": 10}}),
        "invalid_value",
        "context.screen.density",
    ),
    ("density 2.75 ok", make_event(context={"screen": {"density": 2.75}}), None, None),
    (
        "session id a string",
        make_event(context={"session": {"id": "123"}}),
        "invalid_type",
        "context.session.id",
    ),
    (
        "session id beyond int64",
        make_event(context={"session": {"id": 2**63}}),
        "invalid_value",
        "context.session.id",
    ),
    ("session id int64 max ok", make_event(context={"session": {"id": 2**63 - 1}}), None, None),
    (
        "sessionId alias a float",
        make_event(context={"sessionId": 1.5}),
        "invalid_type",
        "context.sessionId",
    ),
    (
        "sessionStart alias a string",
        make_event(context={"sessionStart": "true"}),
        "invalid_type",
        "context.sessionStart",
    ),
    ("ip malformed", make_event(context={"ip": "999.1.1.1"}), "invalid_value", "context.ip"),
    ("ip hostname", make_event(context={"ip": "example.com"}), "invalid_value", "context.ip"),
    ("ip multicast v4", make_event(context={"ip": "224.0.0.1"}), "invalid_value", "context.ip"),
    ("ip multicast v6", make_event(context={"ip": "ff02::1"}), "invalid_value", "context.ip"),
    ("ip a number", make_event(context={"ip": 1}), "invalid_type", "context.ip"),
    ("ip v6 ok", make_event(context={"ip": "2001:db8::1"}), None, None),
    ("ip special value ok", make_event(context={"ip": "255.255.255.0"}), None, None),
    ("connectionId beyond int32", make_event(connectionId=2**31), "invalid_value", "connectionId"),
]


@pytest.mark.parametrize(("case", "event", "reason", "field"), CASES, ids=[c[0] for c in CASES])
def test_rule(stages, case, event, reason, field):
    out = stages.run(event)
    assert out.read == 1
    if reason is None:
        assert out.failed == [], out.failed[0]["message"] if out.failed else ""
        assert len(out.events) == 1
    else:
        assert out.events == []
        [failure] = out.failed
        assert (failure["reason"], failure["field"]) == (reason, field)
        assert f"'{field}'" in failure["message"]


def test_non_object_event_is_rejected_alone(stages):
    out = stages.run([make_event(), 5, "x", None, [1]])
    assert len(out.events) == 1
    assert [f["reason"] for f in out.failed] == ["invalid_event"] * 4
    assert sorted(f["index"] for f in out.failed) == [1, 2, 3, 4]


def test_failed_event_keeps_its_payload_and_position(stages):
    out = stages.run({"batch": [make_event(), make_event(type="view")]})
    [failure] = out.failed
    assert failure["index"] == 1
    assert failure["line"] == 1
    assert failure["source"] == "test.jsonl"
    assert '"view"' in failure["raw"]
    assert (
        failure["message"]
        == "property 'type' must be one of alias, identify, group, page, screen, track"
    )
