"""What counts as the person's: the failed rows' text match (DuckDB's RE2, as BigQuery's) and
the landing envelopes' events."""

from __future__ import annotations

import orjson
import pytest

from eventpipe.core.duck import connect
from eventpipe.io.erasure_match import Subjects

ID = "user-42"
SUBJECTS = Subjects(frozenset({ID, "jös"}), frozenset({"anon-7"}))


@pytest.mark.parametrize(
    ("raw", "matches"),
    [
        ('{"userId":"user-42","event":null}', True),
        ('{"userId": "user-42"}', True),
        ('{"properties":{"friend":"user-42"}}', True),  # any position
        ('{"user-42": 1}', True),  # a key is a JSON string too
        ('{"userId":"user-42', False),  # cut before the closing quote
        ('not json, "user-42" in a torn record', True),
        ('{"userId":"user-42-2"}', False),  # another id that starts with it
        ('{"userId":"xuser-42"}', False),
        ('{"note":"say \\"user-42\\" twice"}', False),  # inside a string: escaped quotes
        ('{"a":"\\\\","b":"user-42"}', True),  # after an escaped backslash
        ('{"userId":"j\\u00f6s"}', True),  # \u-escaped
        ('{"userId":"jös"}', True),
        ('{"anonymousId":"anon-7"}', True),
        ('{"anonymousId":"anon-77"}', False),
        ("", False),
    ],
)
def test_failed_rows_match_the_id_as_a_whole_json_string(raw, matches):
    db = connect()
    found = db.execute(
        f"SELECT {SUBJECTS.failed_sql()} FROM (SELECT $raw AS raw, 1 AS connectionId)",
        {"raw": raw},
    ).fetchone()[0]
    assert found is matches


def test_ids_with_regex_characters_are_literals():
    subjects = Subjects(frozenset({"a.b*(c)[d]|e+?^$\\"}))
    db = connect()
    query = f"SELECT {subjects.failed_sql()} FROM (SELECT $raw AS raw, 1 AS connectionId)"
    text = orjson.dumps({"userId": "a.b*(c)[d]|e+?^$\\"}).decode()
    assert db.execute(query, {"raw": text}).fetchone()[0] is True
    assert db.execute(query, {"raw": '{"userId":"aXb"}'}).fetchone()[0] is False


def test_a_workspace_leaves_failed_rows_of_other_or_no_connection():
    subjects = Subjects(frozenset({ID}), connections=frozenset({5}))
    db = connect()
    for connection, expected in ((5, True), (6, False), (None, False)):
        found = db.execute(
            f"SELECT coalesce({subjects.failed_sql()}, FALSE) "
            "FROM (SELECT $raw AS raw, $c::INTEGER AS connectionId)",
            {"raw": '{"userId":"user-42"}', "c": connection},
        ).fetchone()[0]
        assert found is expected, connection


def line(body: object, connection: int = 5) -> bytes:
    head = {"receivedAt": "2026-12-01T00:00:00Z", "ip": None, "connectionId": connection}
    return orjson.dumps({**head, "body": body}) + b"\n"


MINE = {"type": "track", "event": "a", "userId": ID}
THEIRS = {"type": "track", "event": "a", "userId": "user-43", "properties": {"f": "user-42x"}}
ANON = {"type": "page", "anonymousId": "anon-7"}
ALIAS = {"type": "alias", "userId": "user-9", "previousId": ID}


@pytest.mark.parametrize(
    ("body", "kept", "removed"),
    [
        (
            {"batch": [MINE, THEIRS, ANON], "context": {"a": 1}},
            {"batch": [THEIRS], "context": {"a": 1}},
            2,
        ),
        ({"batch": [MINE, ALIAS]}, None, 2),  # nothing left: the request goes
        ([THEIRS, MINE], [THEIRS], 1),
        (MINE, None, 1),
        (THEIRS, THEIRS, 0),
    ],
)
def test_landed_requests_lose_the_persons_events_only(body, kept, removed):
    new, count = SUBJECTS.erase_from_envelope(line(body))
    assert count == removed
    assert new == (b"" if kept is None else line(kept) if removed else line(body))


def test_an_unrelated_line_is_kept_byte_for_byte():
    text = b'{"receivedAt":"x","ip":null,"connectionId":5,"body":{"batch": [ {"userId" : "u"} ]}}\n'
    assert SUBJECTS.erase_from_envelope(text) == (text, 0)


def test_a_workspace_keeps_other_connections_lines():
    subjects = Subjects(frozenset({ID}), connections=frozenset({6}))
    assert subjects.erase_from_envelope(line(MINE)) == (line(MINE), 0)
    assert subjects.erase_from_envelope(line(MINE, 6)) == (b"", 1)


def test_a_line_that_is_not_json_goes_when_it_carries_the_id():
    assert SUBJECTS.erase_from_envelope(b'{"body": "user-42" \\ broken\n') == (b"", 1)
    assert SUBJECTS.erase_from_envelope(b'{"body": "user-4" \\ broken\n')[1] == 0
