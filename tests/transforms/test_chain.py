"""The in-process stage chain: the import's stages on one table, failures from every stage."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pyarrow as pa

from eventpipe.schemas.records import RECORDS_SCHEMA
from eventpipe.transforms.chain import StageChain
from eventpipe.transforms.enrich import EnrichOptions

START = datetime(2026, 12, 5, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
BOT = "Googlebot/2.1 (+http://www.google.com/bot.html)"


def _records(*docs: object) -> pa.Table:
    texts = [d if isinstance(d, str) else orjson.dumps(d).decode() for d in docs]
    n = len(texts)
    return pa.table([["f"] * n, list(range(1, n + 1)), [0] * n, texts], schema=RECORDS_SCHEMA)


def _event(**fields: object) -> dict:
    event = {"type": "track", "event": "Clicked", "anonymousId": "a-1"}
    event["timestamp"] = "2026-12-04T10:00:00Z"
    return {**event, **fields}


def test_every_stage_runs_and_every_record_is_accounted_for() -> None:
    batch = {
        "batch": [
            _event(messageId="m-1", context={"userAgent": CHROME}),
            {"type": "identify", "messageId": "m-2", "anonymousId": "a-1"},  # no userId: invalid
            _event(messageId="m-3", context={"userAgent": BOT}),  # a bot, dropped by enrich
        ],
        "sentAt": "2026-12-04T10:00:01Z",
    }
    options = EnrichOptions(drop_bots=True)
    with StageChain("run-1", START, default_connection=7, enrich=options) as chain:
        result = chain.run(_records(batch, "{not json"))
    assert result.read == 4  # three events and one record rejected whole
    assert result.events["messageId"].to_pylist() == ["m-1"]
    row = result.events.to_pylist()[0]
    assert row["connectionId"] == 7
    assert row["context"]["browser"]["name"] == "Chrome"  # enriched from the user agent
    reasons = sorted(result.failed["reason"].to_pylist())
    assert reasons == ["bot", "invalid_json", "missing_property"]
    assert result.events.num_rows + result.failed.num_rows == result.read


def test_without_enrichment_the_rows_are_only_normalised() -> None:
    with StageChain("run-1", START, default_connection=7) as chain:
        result = chain.run(_records(_event(messageId="m-1", context={"userAgent": CHROME})))
    assert result.failed.num_rows == 0
    assert result.events.to_pylist()[0]["context"]["browser"] is None
