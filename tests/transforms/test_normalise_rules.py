"""Normalisation rules: context merge, aliases, IP special values, ids, clock drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from eventpipe.schemas import arrow_schema

from pipeline_support import RUN_START, Stages, make_event


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def one(stages, record) -> dict:
    out = stages.run(record)
    assert out.failed == [], out.failed
    [row] = out.events
    return row


def test_batch_context_merges_under_event_context(stages):
    record = {
        "batch": [make_event(context={"page": {"url": "https://a.example/x"}, "locale": "it-IT"})],
        "context": {
            "page": {"title": "Home", "url": "https://batch.example"},
            "locale": "en-US",
            "app": {"name": "shop"},
        },
    }
    ctx = one(stages, record)["context"]
    assert ctx["page"]["url"] == "https://a.example/x"  # the event wins
    assert ctx["page"]["title"] == "Home"  # deep merge: the batch fills what the event lacks
    assert ctx["locale"] == "it-IT"
    assert ctx["app"]["name"] == "shop"


@pytest.mark.parametrize(
    ("context", "session"),
    [
        ({"sessionId": 42, "sessionStart": True}, {"id": 42, "start": True}),
        ({"session": {"id": 7}, "sessionId": 42}, {"id": 7, "start": None}),
        ({"session": {"start": False}, "sessionId": 9}, {"id": 9, "start": False}),
    ],
)
def test_session_aliases(stages, context, session):
    assert one(stages, make_event(context=context))["context"]["session"] == session


IP_CASES = [
    ("81.2.69.160", "8.8.8.8", "81.2.69.160"),
    ("0.0.0.0", "8.8.8.8", None),
    ("255.255.255.255", "81.2.69.160", "81.2.69.160"),
    ("255.255.255.0", "81.2.69.160", "81.2.69.0"),
    ("255.255.0.0", "81.2.69.160", "81.2.0.0"),
    ("255.255.255.0", "2001:db8:aaaa:bbbb::1", "2001:db8:aaaa::"),
    ("255.255.0.0", "2001:db8:aaaa:bbbb::1", "2001:db8::"),
    ("255.255.255.255", None, None),
    ("255.255.255.0", None, None),
    (None, "81.2.69.160", "81.2.69.160"),
    (None, None, None),
    ("2001:DB8:0:0::1", None, "2001:db8::1"),
]


def ip_record(event_ip: str | None, request_ip: str | None) -> dict:
    context = {"ip": event_ip} if event_ip else {}
    envelope = {"receivedAt": "2026-11-20T10:00:00Z", "body": make_event(context=context)}
    if request_ip:
        envelope["ip"] = request_ip
    return envelope


@pytest.mark.parametrize(("event_ip", "request_ip", "stored"), IP_CASES)
def test_ip_special_values(stages, event_ip, request_ip, stored):
    row = one(stages, ip_record(event_ip, request_ip))
    assert (row["context"] or {}).get("ip") == stored


def test_message_id_is_generated_deterministically(stages):
    record = {"batch": [make_event(messageId=...), make_event(messageId=...)]}
    first = [r["messageId"] for r in stages.run(record).events]
    again = [r["messageId"] for r in stages.run(record).events]
    assert first == again
    assert len(set(first)) == 2  # position counts: identical events get distinct ids
    assert all(len(m) == 36 and m.count("-") == 4 for m in first)


def test_explicit_message_id_is_kept(stages):
    assert one(stages, make_event(messageId="abc"))["messageId"] == "abc"


def test_anonymous_id_generated_from_user_id(stages):
    a = one(stages, make_event(anonymousId=..., userId="u-1"))
    b = one(stages, make_event(anonymousId=..., userId="u-1", messageId="other"))
    c = one(stages, make_event(anonymousId=..., userId="u-2"))
    assert a["anonymousId"] == b["anonymousId"] != c["anonymousId"]
    assert a["userId"] == "u-1"


CLOCK_CASES = [
    # (case, envelope receivedAt, batch sentAt, event fields, stored receivedAt, sentAt, originalTimestamp, timestamp)
    (
        "client clock 1h ahead is corrected",
        "2026-11-20T10:00:05Z",
        "2026-11-20T11:00:04Z",
        {"timestamp": "2026-11-20T11:00:00Z"},
        "2026-11-20T10:00:05Z",
        "2026-11-20T11:00:04Z",
        "2026-11-20T11:00:00Z",
        "2026-11-20T10:00:01Z",
    ),
    (
        "event sentAt wins over the batch's",
        "2026-11-20T10:00:05Z",
        "2026-11-20T09:00:00Z",
        {"timestamp": "2026-11-20T10:00:00Z", "sentAt": "2026-11-20T10:00:04Z"},
        "2026-11-20T10:00:05Z",
        "2026-11-20T10:00:04Z",
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:00:01Z",
    ),
    (
        "explicit originalTimestamp is kept",
        "2026-11-20T10:00:05Z",
        "2026-11-20T10:00:05Z",
        {"timestamp": "2026-11-20T10:00:00Z", "originalTimestamp": "2026-11-19T08:00:00Z"},
        "2026-11-20T10:00:05Z",
        "2026-11-20T10:00:05Z",
        "2026-11-19T08:00:00Z",
        "2026-11-20T10:00:00Z",
    ),
    (
        "no sentAt: no correction",
        "2026-11-20T10:00:05Z",
        None,
        {"timestamp": "2026-11-20T09:00:00Z"},
        "2026-11-20T10:00:05Z",
        "2026-11-20T10:00:05Z",
        "2026-11-20T09:00:00Z",
        "2026-11-20T09:00:00Z",
    ),
    (
        "no timestamp: the sent time, corrected, is receivedAt",
        "2026-11-20T10:00:05Z",
        "2026-11-20T12:00:00Z",
        {"timestamp": ...},
        "2026-11-20T10:00:05Z",
        "2026-11-20T12:00:00Z",
        "2026-11-20T12:00:00Z",
        "2026-11-20T10:00:05Z",
    ),
    (
        "correction out of range falls back to receivedAt",
        "2026-11-20T10:00:05Z",
        "9999-12-31T00:00:00Z",
        {"timestamp": "0001-01-01T00:00:00Z"},
        "2026-11-20T10:00:05Z",
        "9999-12-31T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "2026-11-20T10:00:05Z",
    ),
]


@pytest.mark.parametrize(
    ("case", "received", "sent", "fields", "r", "s", "o", "t"),
    CLOCK_CASES,
    ids=[c[0] for c in CLOCK_CASES],
)
def test_clock_drift(stages, case, received, sent, fields, r, s, o, t):
    row = one(stages, clock_record(received, sent, fields))
    assert clock_of(row) == (at(r), at(s), at(o), at(t))


def clock_record(received: str, sent: str | None, fields: dict) -> dict:
    batch = {"batch": [make_event(**fields)]}
    if sent:
        batch["sentAt"] = sent
    return {"receivedAt": received, "body": batch}


def clock_of(row: dict) -> tuple:
    return (row["receivedAt"], row["sentAt"], row["originalTimestamp"], row["timestamp"])


def test_clock_and_ip_rules_in_one_chunk():
    """Both tables as one chunk, in a fresh session (the normaliser plans its SQL once):
    each event is normalised on its own, whatever its neighbours are."""
    records = [clock_record(*c[1:4]) for c in CLOCK_CASES]
    records += [ip_record(event_ip, request_ip) for event_ip, request_ip, _ in IP_CASES]
    out = Stages().run(*records)
    assert out.failed == []
    assert len(out.events) == len(records)  # in input order
    clock, ip = out.events[: len(CLOCK_CASES)], out.events[len(CLOCK_CASES) :]
    for row, (case, *_, r, s, o, t) in zip(clock, CLOCK_CASES, strict=True):
        assert clock_of(row) == (at(r), at(s), at(o), at(t)), case
    assert [(r["context"] or {}).get("ip") for r in ip] == [c[2] for c in IP_CASES]
    # JSON sections are stored as text: the event's own, traits `{}` by default.
    assert {(r["properties"], r["traits"], r["kpid"]) for r in out.events} == {
        ('{"revenue":12.5}', "{}", None)
    }


def test_without_envelope_received_at_comes_from_the_event_then_sent_at(stages):
    exported = one(
        stages,
        make_event(
            receivedAt="2026-01-01T00:00:09Z",
            sentAt="2026-01-01T00:00:08Z",
            timestamp="2026-01-01T00:00:00Z",
        ),
    )
    assert exported["receivedAt"] == at("2026-01-01T00:00:09Z")
    assert exported["timestamp"] == at("2026-01-01T00:00:01Z")
    historical = one(
        stages, make_event(sentAt="2020-05-05T05:05:05Z", timestamp="2020-05-05T05:05:00Z")
    )
    assert historical["receivedAt"] == at("2020-05-05T05:05:05Z")
    assert historical["timestamp"] == at("2020-05-05T05:05:00Z")  # not shifted to the import time
    bare = one(stages, make_event(timestamp="2020-05-05T05:05:00Z"))
    assert bare["receivedAt"] == bare["timestamp"] == at("2020-05-05T05:05:00Z")
    nothing = one(stages, make_event(timestamp=...))
    assert nothing["receivedAt"] == nothing["timestamp"] == RUN_START


def test_connection_id_precedence(stages, stages_without_connection):
    assert one(stages, make_event())["connectionId"] == 1  # the job's --connection-id
    assert one(stages, {"connectionId": 5, "batch": [make_event()]})["connectionId"] == 5
    assert (
        one(stages, {"connectionId": 6, "body": {"connectionId": 5, "batch": [make_event()]}})[
            "connectionId"
        ]
        == 6
    )
    assert (
        one(stages, {"connectionId": 5, "batch": [make_event(connectionId=9)]})["connectionId"] == 9
    )
    out = stages_without_connection.run(make_event())
    [failure] = out.failed
    assert (failure["reason"], failure["field"]) == ("missing_property", "connectionId")
    assert out.read == 1 and out.events == []


def test_traits_default_and_empty_sections(stages):
    row = one(stages, make_event(context={"page": {}, "app": {"name": None}}))
    assert row["traits"] == "{}"
    assert row["context"] is None
    assert row["kpid"] is None
    identify = one(
        stages,
        make_event(
            type="identify",
            event=...,
            properties=...,
            userId="u",
            traits={"plan": "pro", "n": [1, 2]},
        ),
    )
    assert identify["traits"] == '{"plan":"pro","n":[1,2]}'


def test_typed_values_are_stored_with_their_schema_types(stages):
    from decimal import Decimal

    row = one(
        stages,
        make_event(
            context={
                "screen": {"width": 3024, "height": 1964, "density": 2},
                "session": {"id": 1766272512048},
            }
        ),
    )
    assert row["context"]["screen"] == {"width": 3024, "height": 1964, "density": Decimal("2.00")}
    assert row["context"]["session"]["id"] == 1766272512048
    assert set(row) == set(arrow_schema().names)


def test_the_archive_normalises_to_the_same_rows_in_a_later_run():
    """LAKE/raw keeps the normaliser's archive column: a reprocess (another run start,
    no --connection-id) must give back exactly the rows of the first run."""
    from datetime import timedelta

    import orjson

    from eventpipe.core.duck import connect
    from eventpipe.io.lake_sink import archive_table
    from eventpipe.schemas.records import ARCHIVE_COLUMN
    from eventpipe.transforms.normalise import EventNormaliser

    from pipeline_support import Stages

    first = Stages(default_connection=9)
    records = [
        {
            "batch": [make_event(messageId=...), make_event(sentAt=...)],
            "context": {"locale": "it-IT"},
        },
        {"body": make_event(context={"ip": "255.255.255.0"}), "ip": "203.0.113.9"},
        {"receivedAt": "2026-11-20T10:00:00Z", "body": make_event(timestamp=..., sentAt=...)},
        make_event(timestamp=..., sentAt=..., originalTimestamp=..., receivedAt=...),
        make_event(anonymousId=..., userId="u-1", connectionId=3),
    ]
    events, failed, _ = first.run_tables([orjson.dumps(r).decode() for r in records])
    assert failed.num_rows == 0 and events.num_rows == 6
    later = EventNormaliser("later-run", RUN_START + timedelta(days=3), None).bind(connect())
    archive = archive_table(events)
    again = later.normalise(archive)
    assert again.failed.num_rows == 0
    assert again.events.drop_columns([ARCHIVE_COLUMN]).equals(events.drop_columns([ARCHIVE_COLUMN]))


# Density is rounded half-up to 2 decimals on its decimal value (issue 11.1); what
# decimal(3, 2) cannot hold is rejected, with the reason in the message.
@pytest.mark.parametrize(
    ("density", "stored"),
    [
        (1.3636363636363635, "1.36"),  # a zoomed page
        (1.25, "1.25"),  # Windows scaling
        (2.625, "2.63"),  # half-up, not half-even
        (1.005, "1.01"),  # on the decimal text, not the double (1.00499999...)
        (0.005, "0.01"),
        (9.994, "9.99"),
        (2, "2.00"),
    ],
)
def test_density_is_rounded_half_up(stages, density, stored):
    from decimal import Decimal

    assert one(stages, make_event(context={"screen": {"density": density}}))["context"]["screen"][
        "density"
    ] == Decimal(stored)
    batch = {"batch": [make_event()], "context": {"screen": {"density": density}}}
    assert one(stages, batch)["context"]["screen"]["density"] == Decimal(stored)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("9.995", "below 10"),
        ("12", "below 10"),
        ("1e40", "below 10"),
        ("-1", "must be positive"),
        ("0", "it is 0 after rounding"),
        ("0.004", "it is 0 after rounding"),
        ("-0.001", "it is 0 after rounding"),
    ],
)
def test_density_that_decimal_3_2_cannot_hold_is_rejected(stages, text, says):
    event = make_event(context={"screen": {"width": 10}})
    record = json.dumps(event).replace('"width": 10', f'"density": {text}')
    out = stages.run(record)
    [failure] = out.failed
    assert (failure["reason"], failure["field"]) == ("invalid_value", "context.screen.density")
    assert says in failure["message"]
    batch = json.dumps({"batch": [make_event()], "context": {"screen": {"width": 10}}})
    out = stages.run(batch.replace('"width": 10', f'"density": {text}'))
    [failure] = out.failed
    assert (failure["reason"], failure["field"]) == ("invalid_batch", "context.screen.density")
    assert says in failure["message"] and out.events == []


@pytest.mark.parametrize(
    ("event_context", "batch_context", "session"),
    [
        ({}, {"sessionId": 5, "sessionStart": True}, {"id": 5, "start": True}),
        ({"sessionId": 6}, {"sessionId": 5, "sessionStart": True}, {"id": 6, "start": True}),
        ({}, {"session": {"id": 7}, "sessionId": 5}, {"id": 7, "start": None}),
    ],
)
def test_session_aliases_of_the_batch_context(stages, event_context, batch_context, session):
    """The event's value, its alias in the event, the batch's, then its alias in the batch."""
    record = {"batch": [make_event(context=event_context)], "context": batch_context}
    assert one(stages, record)["context"]["session"] == session
