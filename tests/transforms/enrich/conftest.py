"""Fixtures of the enrichment tests: event/table factories and a tiny City database."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from mmdb_writer import MmdbF64, MmdbU16, MmdbU32, MMDBWriter
from netaddr import IPSet

from eventpipe.schemas.event_schema import arrow_schema

WHEN = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

BASE_EVENT: dict[str, Any] = {
    "connectionId": 1,
    "anonymousId": "anon-1",
    "messageId": "msg-1",
    "type": "page",
    "receivedAt": WHEN,
    "sentAt": WHEN,
    "originalTimestamp": WHEN,
    "timestamp": WHEN,
    "traits": "{}",
    "context": {},
}

# The tiny City database: network -> (city, country, latitude, longitude).
TINY_NETWORKS: dict[str, tuple[str | None, str | None, float | None, float | None]] = {
    "81.2.69.0/24": ("London", "GB", 51.5142, -0.0931),
    "175.16.199.0/24": ("Changchun", "CN", 43.88, 125.3228),
    "2a02:ff0::/32": ("Berlin", "DE", 52.5244, 13.4105),
    "89.160.20.0/24": (None, "SE", None, None),  # country only, no coordinates
    "10.0.0.0/8": ("Nowhere", "ZZ", 1.0, 1.0),  # private: must never be looked up
}
_GEONAME_IDS = {"London": 2643743, "Changchun": 2038180, "Berlin": 2950159, "Nowhere": 1}
_COUNTRY_IDS = {"GB": 2635167, "CN": 1814991, "DE": 2921044, "SE": 2661886, "ZZ": 2}


def _city_record(
    city: str | None, country: str | None, latitude: float | None, longitude: float | None
) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if city is not None:
        record["city"] = {"geoname_id": MmdbU32(_GEONAME_IDS[city]), "names": {"en": city}}
    if country is not None:
        record["country"] = {"geoname_id": MmdbU32(_COUNTRY_IDS[country]), "iso_code": country}
        record["registered_country"] = dict(record["country"])
    if latitude is not None and longitude is not None:
        record["location"] = {
            "accuracy_radius": MmdbU16(20),
            "latitude": MmdbF64(latitude),
            "longitude": MmdbF64(longitude),
        }
    return record


def build_city_db(path: Path, networks: dict[str, tuple[Any, ...]] = TINY_NETWORKS) -> Path:
    """Write a GeoIP2-City-shaped database holding `networks` (IPv4 and IPv6)."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoIP2-City",
        languages=["en"],
        description="eventpipe test City database",
    )
    for network, values in networks.items():
        writer.insert_network(IPSet([network]), _city_record(*values))
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="session")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the tiny City database built for the tests."""
    return build_city_db(tmp_path_factory.mktemp("geoip") / "tiny-city.mmdb")


@pytest.fixture
def make_city_db(tmp_path: Path) -> Callable[[dict[str, tuple[Any, ...]]], Path]:
    """Factory of City databases holding the networks given (in the test's tmp_path)."""
    return lambda networks: build_city_db(tmp_path / f"city-{len(networks)}.mmdb", networks)


@pytest.fixture
def make_event() -> Callable[..., dict[str, Any]]:
    """Factory of valid event rows; keyword arguments replace top-level fields."""

    def make(**overrides: Any) -> dict[str, Any]:
        event = copy.deepcopy(BASE_EVENT)
        event.update(overrides)
        return event

    return make


@pytest.fixture
def make_table() -> Callable[..., pa.Table]:
    """Factory of event tables with the exact lake schema, from event rows."""

    def make(*events: dict[str, Any]) -> pa.Table:
        return pa.Table.from_pylist(list(events), schema=arrow_schema())

    return make
