"""The pure streaming logic: windows, lateness, dedupe, messages -> records, file writes."""

from __future__ import annotations

from datetime import timedelta, timezone

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventpipe.core.duck import connect
from eventpipe.io.lake_sink import write_visible
from eventpipe.io.pubsub import (
    Message,
    envelope_text,
    failed_not_utf8,
    records_from_messages,
    split_not_utf8,
)
from eventpipe.io.stream_windows import split_by_window, split_late
from eventpipe.io.stream_writers import (
    late_file_name,
    window_file_name,
)
from eventpipe.schemas import arrow_schema
from eventpipe.transforms import streaming as S

from stream_support import T0

SCHEMA = arrow_schema()
US = 1_000_000


def events_table(*rows: dict) -> pa.Table:
    """Event-table rows (only the columns these tests need are set; the rest null)."""
    full = [{name: row.get(name) for name in SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=SCHEMA)


def row(i: int, seconds: float, connection: int = 1, **extra: object) -> dict:
    at = T0 + timedelta(seconds=seconds)
    return {
        "messageId": f"m{i}",
        "connectionId": connection,
        "timestamp": at,
        "receivedAt": at,
        "sentAt": at,
        "originalTimestamp": at,
        "anonymousId": f"a{i}",
        "traits": "{}",
        "type": "track",
        **extra,
    }


def us(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp() * US)


def test_split_by_window_groups_rows_of_each_fixed_window_in_order() -> None:
    table = events_table(row(1, 61), row(2, 5), row(3, 119.9), row(4, 0), row(5, 120))
    parts = split_by_window(table, "timestamp", 60 * US)
    assert [start for start, _ in parts] == [us(0), us(60), us(120)]
    assert [p["messageId"].to_pylist() for _, p in parts] == [["m2", "m4"], ["m1", "m3"], ["m5"]]


@pytest.mark.parametrize(
    ("event_s", "arrived_s", "late"),
    [
        (10, 89.999, False),  # window [0, 60) + 30 s lateness closes at 90
        (10, 90, True),
        (59.9, 90, True),
        (60, 90, False),  # next window
        (10, 5, False),  # arrived before its own time (client clock ahead)
    ],
)
def test_an_event_is_late_once_its_window_end_plus_lateness_has_passed(
    event_s: float, arrived_s: float, late: bool
) -> None:
    split = split_late(events_table(row(1, event_s)), us(arrived_s), 60 * US, 30 * US)
    assert (split.late.num_rows, split.on_time.num_rows) == ((1, 0) if late else (0, 1))
    # A late event is an event (it is written to its day's partition), not a failed row.
    assert (split.late if late else split.on_time).schema == SCHEMA


@pytest.mark.parametrize(
    ("event_s", "too_old"),
    [(-3600, False), (-3600.001, True), (-86_400 * 365, True), (5, False)],
)
def test_an_event_older_than_the_maximum_age_fails_as_too_old(
    event_s: float, too_old: bool
) -> None:
    split = S.split_too_old(events_table(row(1, event_s)), us(0), 3600 * US, "run")
    assert (split.too_old.num_rows, split.kept.num_rows) == ((1, 0) if too_old else (0, 1))
    if too_old:
        failed = split.too_old.to_pylist()[0]
        assert (failed["reason"], failed["field"]) == ("too_old", "timestamp")
        assert "maximum event age 3600s" in failed["message"]
        assert orjson.loads(failed["raw"])["messageId"] == "m1"
        assert failed["runId"] == "run"


def test_drop_seen_keeps_the_first_copy_and_remembers_keys_until_they_expire() -> None:
    seen = S.SEEN_SCHEMA.empty_table()
    first = S.drop_seen(
        events_table(row(1, 0), row(2, 0), row(1, 1), row(1, 0, connection=2)), seen, us(0), 60 * US
    )
    assert first.unique["messageId"].to_pylist() == ["m1", "m2", "m1"]
    assert first.unique["connectionId"].to_pylist() == [1, 1, 2]  # the key includes the connection
    assert first.duplicates == 1
    again = S.drop_seen(events_table(row(2, 5), row(3, 5)), first.seen, us(30), 60 * US)
    assert again.unique["messageId"].to_pylist() == ["m3"]
    assert again.duplicates == 1
    # 61 s later the keys seen at 0 are forgotten: a copy then is kept (bounded memory).
    later = S.drop_seen(events_table(row(1, 61)), again.seen, us(61), 60 * US)
    assert later.unique.num_rows == 1
    assert sorted(later.seen["key"].to_pylist()) == ["1:m1", "1:m3"]


def test_shards_are_stable_and_in_range() -> None:
    table = events_table(*(row(i, 0) for i in range(200)))
    shards = S.shard_of(table, 4)
    assert set(shards.tolist()) == {0, 1, 2, 3}
    assert S.shard_of(table, 4).tolist() == shards.tolist()  # no per-process hash seed
    assert S.shard_of(table.slice(7, 1), 4)[0] == shards[7]


def message(data: bytes, **attributes: str) -> Message:
    return Message(data, attributes, "42", T0)


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        # A raw event: wrapped, receivedAt = publish time.
        (
            message(b'{"type":"track"}'),
            {"receivedAt": T0.isoformat(), "body": {"type": "track"}},
        ),
        # Attributes fill the envelope; a numeric connectionId stays a number.
        (
            message(b"[]", receivedAt="2026-11-25T11:00:00Z", ip="1.2.3.4", connectionId="9"),
            {"receivedAt": "2026-11-25T11:00:00Z", "ip": "1.2.3.4", "connectionId": 9, "body": []},
        ),
        # A non-numeric connectionId stays a string: parse rejects the envelope, naming it.
        (
            message(b"{}", connectionId="x"),
            {"receivedAt": T0.isoformat(), "connectionId": "x", "body": {}},
        ),
    ],
)
def test_messages_are_wrapped_in_an_envelope_from_their_attributes(
    msg: Message, expected: dict
) -> None:
    assert orjson.loads(envelope_text(msg, msg.data.decode())) == expected


def test_records_from_messages_keep_envelopes_and_invalid_json_as_they_are() -> None:
    envelope = b'{"receivedAt":"2026-11-25T10:00:00Z","body":{"type":"track"}}'
    messages = [
        Message(envelope, {"receivedAt": "ignored"}, "m-env", T0),
        Message(b'{"type": "page"}', {}, "m-raw", T0),
        Message(b'{"broken', {}, "m-bad", T0),
    ]
    table = records_from_messages(messages, "projects/p/subscriptions/s", connect())
    raws = table["raw"].to_pylist()
    assert raws[0] == envelope.decode()
    assert orjson.loads(raws[1])["body"] == {"type": "page"}
    assert raws[2] == '{"broken'
    assert table["source"].to_pylist()[2] == "projects/p/subscriptions/s/messages/m-bad"


def test_window_files_are_named_by_run_window_shard_and_sequence() -> None:
    name = window_file_name("r1", us(60), 3, 12)
    assert name == "part-r1-w20261125T120100Z-s003-000012.parquet"
    assert late_file_name("r1", 3, 13) == "part-r1-late-s003-000013.parquet"


def test_a_rewritten_window_file_replaces_the_old_one_atomically(tmp_path) -> None:
    rel = "date=2026-11-25/" + window_file_name("r1", us(0), 0, 0)
    first = [("events", rel, events_table(row(1, 0), row(2, 0)))]
    write_visible(str(tmp_path), "events-w0", first)
    write_visible(str(tmp_path), "events-w0", [("events", rel, events_table(row(1, 0)))])  # a retry
    files = list((tmp_path / "events").rglob("*.parquet"))
    assert [f.relative_to(tmp_path / "events").as_posix() for f in files] == [rel]
    assert pq.read_table(files[0])["messageId"].to_pylist() == ["m1"]
    assert not list((tmp_path / "_staging").rglob("*"))  # nothing left aside


def test_a_publish_time_in_another_zone_becomes_a_utc_received_at() -> None:
    # The same instant as T0, given as 13:00+01:00: the envelope says 12:00 UTC.
    published = T0.astimezone(timezone(timedelta(hours=1)))
    msg = Message(b'{"type":"track"}', {}, "m-tz", published)
    received = orjson.loads(envelope_text(msg, msg.data.decode()))["receivedAt"]
    assert received == "2026-11-25T12:00:00+00:00"
    [failed] = failed_not_utf8([(Message(b"\xff", {}, "m-x", published), "why")], "s", "r")
    [at] = failed["receivedAt"].to_pylist()
    assert at == T0 and at.utcoffset() == timedelta(0)


def test_messages_that_are_not_utf8_become_failed_rows_with_their_bytes() -> None:
    good = Message(b'{"type": "page"}', {}, "m-ok", T0)
    bad = Message(b'{"type": "page", "name": "caf\xe9"}', {}, "m-latin1", T0)
    utf8, not_utf8 = split_not_utf8([good, bad])
    assert utf8 == [good]
    [(message, why)] = not_utf8
    assert message is bad
    assert why == (
        "the message is not valid UTF-8 (invalid continuation byte: byte 0xe9 at byte 30 "
        "of the message)"
    )
    [failed] = failed_not_utf8(not_utf8, "projects/p/subscriptions/s", "run-1")
    [row] = failed.to_pylist()
    assert row["reason"] == "invalid_json" and row["message"] == why
    assert row["raw"] == '{"type": "page", "name": "caf\\xe9"}'  # the bytes, not U+FFFD
    assert row["source"] == "projects/p/subscriptions/s/messages/m-latin1"
    assert row["receivedAt"] == T0
