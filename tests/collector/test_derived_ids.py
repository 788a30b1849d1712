"""Events without a messageId get one derived by the import's normalisation: the landing
envelope's receivedAt is part of it, so the same event sent in two requests is two events,
while re-importing a segment, redelivering a Pub/Sub message or reprocessing keeps ids."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
from collector_support import Tenant, bearer, landing_closed, running_app, wait_until

from eventpipe.collector.server import CollectorConfig, collector_app
from eventpipe.core.duck import connect
from eventpipe.io.pubsub import Message, envelope_text
from eventpipe.jobs.cli import main
from eventpipe.schemas.records import ARCHIVE_COLUMN, PARSED_SCHEMA, RECORDS_SCHEMA
from eventpipe.transforms.normalise import EventNormaliser
from eventpipe.transforms.parse import RecordParser

START = datetime(2026, 12, 5, tzinfo=UTC)
EVENT = '{"type": "track", "event": "Clicked", "anonymousId": "a-1"}'  # no id, no time


def derived_ids(records: list[str]) -> list[str]:
    """The messageIds normalisation gives the events of `records` (one event each)."""
    con = connect()
    parsed = RecordParser("t", START).bind(con).parse(_records(records))
    assert parsed.failed.num_rows == 0
    normalised = EventNormaliser("t", START, 7).bind(con).normalise(parsed.events)
    return normalised.events["messageId"].to_pylist()


def _records(texts: list[str]) -> pa.Table:
    n = len(texts)
    columns = [["f"] * n, list(range(1, n + 1)), [0] * n, texts]
    return pa.Table.from_arrays([pa.array(c) for c in columns], schema=RECORDS_SCHEMA)


def _envelope(received: str, body: str = EVENT) -> str:
    return f'{{"receivedAt": "{received}", "ip": "1.2.3.4", "connectionId": 7, "body": {body}}}'


def test_two_requests_of_the_same_event_get_two_ids_and_a_reimport_the_same() -> None:
    first, second = _envelope("2026-12-05T10:00:00.000001Z"), _envelope("2026-12-05T10:00:00.5Z")
    a, b = derived_ids([first, second])
    assert a != b
    assert derived_ids([first, second]) == [a, b]  # the same segment imported again


def test_pubsub_messages_get_the_same_rule() -> None:
    """A raw Pub/Sub message is wrapped in an envelope whose receivedAt is its publish
    time: two publications of one event are two events, a redelivery is the same one."""

    def message(published: datetime) -> Message:
        return Message(EVENT.encode(), {"connectionId": "7"}, "m", published)

    one = message(datetime(2026, 12, 5, 10, tzinfo=UTC))
    two = message(datetime(2026, 12, 5, 10, 0, 1, tzinfo=UTC))
    a, b, again = derived_ids([envelope_text(m, EVENT) for m in (one, two, one)])
    assert a != b and again == a


def test_events_outside_envelopes_and_archived_rows_keep_their_ids() -> None:
    """A record with no receive time, or one whose event says the same time, keeps the id of
    the old formula; re-normalising an archived row (reprocess) gives the id it had."""
    timed = (
        '{"type": "track", "event": "C", "anonymousId": "a", "timestamp": "2026-12-05T09:00:00Z"}'
    )
    plain_id, enveloped_id = derived_ids([timed, _envelope("2026-12-05T10:00:00Z", timed)])
    con = connect()
    old = duckdb.sql(
        "SELECT regexp_replace(md5(concat_ws('|', 7, 0, NULL, ?)), "
        "'^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\\1-\\2-\\3-\\4-\\5')",
        params=[timed],
    ).fetchall()[0][0]
    assert plain_id == old != enveloped_id
    parser, normaliser = (
        RecordParser("t", START).bind(con),
        EventNormaliser("t", START, 7).bind(con),
    )
    records = [timed, _envelope("2026-12-05T10:00:00Z", timed), _envelope("2026-12-05T11:00:00Z")]
    first = normaliser.normalise(parser.parse(_records(records)).events)
    archived = pa.Table.from_struct_array(first.events[ARCHIVE_COLUMN].combine_chunks())
    again = normaliser.normalise(archived.cast(PARSED_SCHEMA))
    assert again.events["messageId"].to_pylist() == first.events["messageId"].to_pylist()


def test_the_same_event_sent_twice_over_http_is_stored_twice(lake: Path, tenant: Tenant) -> None:
    config = CollectorConfig(lake=str(lake), segment_seconds=0.5).check()
    event = {"type": "track", "event": "Clicked", "anonymousId": "a-1"}
    with running_app(collector_app(config)) as url, httpx.Client(base_url=url) as client:
        for _ in range(2):
            response = client.post("/v1/events", json=[event], headers=bearer(tenant.write_key))
            assert response.status_code == 200, response.text
        wait_until(lambda: landing_closed(lake), "the segment to close")
    assert main(["import", "--landing", "--lake", str(lake)]) == 0
    stored = duckdb.sql(
        f"SELECT messageId FROM read_parquet('{lake}/events/*/*.parquet')"
    ).fetchall()
    assert len({m for (m,) in stored}) == 2
