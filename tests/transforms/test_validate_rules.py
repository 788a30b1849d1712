"""Every validation rule of seed 000, one table row each: event in, reason and field out."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from eventpipe.core.duck import connect
from eventpipe.core.json_audit import audit_json
from eventpipe.schemas.records import RECORDS_SCHEMA
from eventpipe.transforms.validate import EventValidator

from pipeline_support import RUN_START, Stages, make_event

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


# The full message of some cases (seed 000's wording), checked in `test_every_rule_in_one_chunk`.
MESSAGES = {
    "unknown type": "property 'type' must be one of alias, identify, group, page, screen, track",
    "missing type": "property 'type' is required",
    "timestamp not a datetime": "property 'timestamp' must be an ISO 8601 datetime with a year"
    " in 1..9999 and a UTC offset within +-14:00",
    "density 9.995 rounds to 10": "property 'context.screen.density' must be a finite number"
    " below 10 after rounding half-up to 2 decimals",
    "screen width 0": "property 'context.screen.width' must be an integer in [1, 32767]",
    "connectionId beyond int32": "property 'connectionId' must be an integer in"
    " [-2147483648, 2147483647]",
    "session id beyond int64": "property 'context.session.id' must be an integer in"
    " [-9223372036854775808, 9223372036854775807]",
    "event on page": "property 'event' is not permitted for a page event",
    "identify without userId": "property 'userId' is required for an identify event",
    "no anonymousId nor userId": "either 'anonymousId' or 'userId' is required",
    "originalTimestamp without timestamp": "property 'timestamp' is required when"
    " 'originalTimestamp' is present",
    "empty event": "property 'event' cannot be empty",
    "properties an array": "property 'properties' must be a JSON object",
}


def test_every_rule_in_one_chunk():
    """The whole table as one chunk, in a fresh session (the validator plans its SQL once):
    each event gets its own verdict, whatever its neighbours are."""
    assert set(MESSAGES) <= {case for case, *_ in CASES}
    out = Stages().run(*(event for _, event, _, _ in CASES))
    assert out.read == len(CASES)
    failed = {f["line"]: f for f in out.failed}
    for line, (case, _, reason, field) in enumerate(CASES, 1):
        got = failed.get(line)
        assert (got and (got["reason"], got["field"])) == (reason and (reason, field)), case
        assert got is None or f"'{field}'" in got["message"], case
        assert case not in MESSAGES or got["message"] == MESSAGES[case]
    assert len(out.events) == sum(reason is None for _, _, reason, _ in CASES)


def test_a_key_twice_does_not_hide_the_other_events_problems():
    """A key twice is the first problem of its event only: the chunk's other events keep theirs."""
    twice = '{"type": "track", "type": "page", "event": "E", "anonymousId": "a"}'
    out = Stages().run(twice, make_event(type=5), make_event(), make_event(event=""))
    assert [(f["line"], f["reason"], f["field"], f["message"]) for f in out.failed] == [
        (1, "invalid_json", "type", "the event has the key 'type' more than once"),
        (2, "invalid_type", "type", "property 'type' must be a string"),
        (4, "invalid_value", "event", "property 'event' cannot be empty"),
    ]
    assert len(out.events) == 1


@pytest.mark.parametrize(
    ("event", "received"),
    [
        (make_event(type="view", receivedAt="2026-11-20T09:30:00Z"), "2026-11-20T09:30:00+00:00"),
        (make_event(type="view"), RUN_START.isoformat()),
    ],
    ids=["the event's receivedAt", "else the run's start"],
)
def test_a_failed_row_names_its_run_and_when_it_was_received(event, received):
    out = Stages().run(event)
    [failure] = out.failed
    assert failure["runId"] == "test-run"
    assert failure["receivedAt"].isoformat() == received


def test_a_lower_depth_limit_rejects_shallower_nesting():
    """max_depth counts levels below the event, whatever the text's suspect flags say."""
    stages = Stages()
    validator = EventValidator("t", RUN_START, max_depth=5).bind(connect())
    deep = {"a": {"b": {"c": {"d": 1}}}}  # the event is level 1: d's object is level 5
    records = [make_event(properties=deep), make_event(properties={"x": deep})]
    table = pa.table(
        [["f"] * 2, [1, 2], [0, 0], [orjson.dumps(r).decode() for r in records]],
        schema=RECORDS_SCHEMA,
    )
    result = validator.validate(stages.chain.parser.parse(table).events)
    assert result.valid["line"].to_pylist() == [1]
    assert result.failed["field"].to_pylist() == ["properties"]
    assert "deeper than 5 levels" in result.failed["message"][0].as_py()


_BEYOND_64 = "is an integer beyond 64 bits (JSON readers would round it)"
_LONG = "1" + "0" * 45 + "e999"
# (case, properties as JSON text, field or None when valid, what the message says of it)
AUDIT_CASES = [
    ("literals next to a long integer", '{"n": 1234567890123456789, "t": true, "f": false, "z": null}', None, None),
    ("uint64 max", '{"n": 18446744073709551615}', None, None),
    ("zero with a big exponent", '{"x": 0e-400, "y": 0E-400, "w": 0.0e-999}', None, None),
    ("2**64", '{"n": 18446744073709551616}', "properties.n", _BEYOND_64),
    ("below int64 min", '{"n": -9223372036854775809}', "properties.n", _BEYOND_64),
    ("after a literal in an array", '{"x": [true, 12345678901234567890123]}', "properties.x[1]", _BEYOND_64),
    ("underflow", '{"x": 1e-400}', "properties.x", "is a number outside the range of a double (1e-400)"),
    ("underflow, capital E", '{"x": 1E-400}', "properties.x", "is a number outside the range of a double (1E-400)"),
    ("overflow in a nested object", '{"a": [1, {"b": 1e999}]}', "properties.a[1].b", "is a number outside the range of a double (1e999)"),
    ("a long number is cut to 40 characters", '{"x": ' + _LONG + "}", "properties.x", f"is a number outside the range of a double ({_LONG[:40]})"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "properties", "field", "says"), AUDIT_CASES, ids=[c[0] for c in AUDIT_CASES]
)
def test_values_no_reader_can_hold(stages, case, properties, field, says):
    """No value that is not finite, beyond a double or 64 bits: rejected with its path."""
    event = orjson.dumps(make_event(properties={})).decode()
    out = stages.run(event.replace('"properties":{}', f'"properties":{properties}'))
    if field is None:
        assert (out.failed, len(out.events)) == ([], 1)
    else:
        [failure] = out.failed
        assert (failure["reason"], failure["field"]) == ("invalid_value", field)
        assert failure["message"] == f"property '{field}' {says}"


@pytest.mark.parametrize(
    ("text", "max_depth", "expected"),
    [
        ('"just a string"', 32, None),  # a document that is one string: no key to read
        ("[1, 2.5, true, null]", 32, None),
        ('["a", "b", 1e999]', 32, ("[2]", "is a number outside the range of a double (1e999)")),
        ("{}", 0, ("the event", "is nested deeper than 0 levels")),
        (
            '{"a": [1, {"b": [1e999]}]}',
            32,
            ("a[1].b[0]", "is a number outside the range of a double (1e999)"),
        ),
        ('{"a": {"b": 1}, "c": [[2]]}', 2, ("c", "is nested deeper than 2 levels")),
        (
            '[{"k": 1}, {"k": 18446744073709551616}]',
            32,
            ("[1].k", "is an integer beyond 64 bits (JSON readers would round it)"),
        ),
    ],
)
def test_audit_json_names_the_path_of_the_first_problem(text, max_depth, expected) -> None:
    assert audit_json(text, max_depth) == expected
