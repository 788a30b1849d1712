"""The values of conditions, parsed for their property's type."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator

import pytest

from eventpipe.query.values import parse_datetime, parse_decimal


@pytest.fixture
def new_york() -> Iterator[None]:
    """The process in a time zone other than UTC."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_datetimes_are_utc_whatever_the_server_time_zone(new_york: None) -> None:
    naive = parse_datetime("2025-10-20T01:00:00")
    assert (naive.tzinfo, naive.date(), naive.hour) == (dt.UTC, dt.date(2025, 10, 20), 1)
    offset = parse_datetime("2025-10-20T01:00:00+02:00")
    assert (offset.tzinfo, offset.date(), offset.hour) == (dt.UTC, dt.date(2025, 10, 19), 23)


def test_datetime_text_up_to_64_characters() -> None:
    text = "2025-10-20T16:15:24." + "1" * 44
    assert len(text) == 64
    assert parse_datetime(text) == dt.datetime(2025, 10, 20, 16, 15, 24, 111111, dt.UTC)
    with pytest.raises(ValueError, match="is not an ISO 8601 datetime"):
        parse_datetime(text + "1")


def test_decimals_keep_their_digits() -> None:
    assert str(parse_decimal(" 2.50 ")) == "2.50"
    assert str(parse_decimal("-1e3")) == "-1E+3"
