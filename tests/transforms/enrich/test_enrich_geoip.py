"""IP geolocation on a tiny City database built by the tests and on the default GeoLite2."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path

import geoip2.database
import pytest
from apache_beam.io.localfilesystem import LocalFileSystem
from hypothesis import given, settings
from hypothesis import strategies as st

from eventpipe.transforms.enrich.geoip import (
    GeoLocator,
    Location,
    default_database_path,
    is_public_ip,
    public_lookup_key,
)

BERLIN = Location(city="Berlin", country="DE", latitude=52.5244, longitude=13.4105)
LONDON = Location(city="London", country="GB", latitude=51.5142, longitude=-0.0931)


@pytest.fixture(scope="module")
def tiny(city_db: Path) -> GeoLocator:
    locator = GeoLocator(str(city_db))
    yield locator
    locator.close()


@pytest.fixture(scope="module")
def geolite() -> GeoLocator:
    locator = GeoLocator()
    yield locator
    locator.close()


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("81.2.69.160", LONDON),
        ("81.2.69.1", LONDON),
        ("175.16.199.37", Location("Changchun", "CN", 43.88, 125.3228)),
        ("2a02:ff0::1", BERLIN),
        ("2a02:ff0:ffff:ffff::abcd", BERLIN),
        ("::ffff:81.2.69.160", LONDON),  # IPv4-mapped IPv6
        # Only the country is known: no city, no coordinates (None, never zeros).
        ("89.160.20.128", Location(city=None, country="SE", latitude=None, longitude=None)),
        # Not in the database.
        ("1.1.1.1", None),
        ("2a03::1", None),
    ],
)
def test_locate_in_the_tiny_database(tiny: GeoLocator, ip: str, expected: Location | None) -> None:
    assert tiny.locate(ip) == expected


@pytest.mark.parametrize(
    "ip",
    [
        "10.1.2.3",  # private, although the tiny database knows 10.0.0.0/8
        "192.168.1.10",
        "172.16.5.4",
        "127.0.0.1",
        "169.254.1.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.1.2.3",
    ],
)
def test_non_public_addresses_get_no_location(tiny: GeoLocator, ip: str) -> None:
    assert tiny.locate(ip) is None


@pytest.mark.parametrize("ip", ["", "not an ip", "81.2.69", "81.2.69.300", "2a02:ff0::zz"])
def test_invalid_addresses_get_no_location(tiny: GeoLocator, ip: str) -> None:
    assert tiny.locate(ip) is None


def test_tiny_database_metadata(tiny: GeoLocator, city_db: Path) -> None:
    assert tiny.database_type == "GeoIP2-City"
    assert tiny.build_date.tzinfo is UTC
    assert str(city_db) in tiny.describe()


def test_tiny_database_is_a_city_database_for_geoip2(city_db: Path) -> None:
    with geoip2.database.Reader(str(city_db)) as reader:
        city = reader.city("2a02:ff0::1")
    assert (city.city.name, city.country.iso_code) == ("Berlin", "DE")
    assert (city.location.latitude, city.location.longitude) == (52.5244, 13.4105)


def test_file_url_paths_are_local(city_db: Path) -> None:
    locator = GeoLocator(f"file://{city_db}")
    try:
        assert locator.locate("81.2.69.160") == LONDON
    finally:
        locator.close()


class PrefixedLocalFileSystem(LocalFileSystem):
    """A Beam filesystem with its own scheme over local files: a "remote" path for the tests."""

    @classmethod
    def scheme(cls) -> str:
        return "eventpipe-test"

    def _path_open(self, path, mode, *args, **kwargs):  # type: ignore[no-untyped-def]
        local = path.removeprefix("eventpipe-test://")
        return super()._path_open(local, mode, *args, **kwargs)


def test_non_local_paths_are_copied_through_beam_filesystems(city_db: Path) -> None:
    locator = GeoLocator(f"eventpipe-test://{city_db}")
    copy = Path(locator._local)
    try:
        assert copy != city_db
        assert copy.read_bytes() == city_db.read_bytes()
        assert locator.locate("2a02:ff0::1") == BERLIN
        assert locator.source == f"eventpipe-test://{city_db}"
    finally:
        locator.close()
    assert not copy.exists()


def test_lookups_are_cached_and_bounded(city_db: Path) -> None:
    locator = GeoLocator(str(city_db), cache_size=2)
    try:
        for ip in ["81.2.69.160", "81.2.69.160", "2a02:ff0::1", "175.16.199.1", "81.2.69.160"]:
            locator.locate(ip)
        hits, misses, size = locator.cache_info()
        assert (hits, misses, size) == (1, 4, 2)
    finally:
        locator.close()


def test_default_database_is_the_packaged_geolite2_city(geolite: GeoLocator) -> None:
    assert geolite.source == default_database_path()
    assert geolite.database_type == "GeoLite2-City"
    assert geolite.build_date.date() == datetime(2018, 7, 3, tzinfo=UTC).date()


@pytest.mark.parametrize(
    ("ip", "country"),
    [("81.2.69.160", "GB"), ("8.8.8.8", "US"), ("2001:4860:4860::8888", "US")],
)
def test_well_known_addresses_in_the_default_database(
    geolite: GeoLocator, ip: str, country: str
) -> None:
    location = geolite.locate(ip)
    assert location is not None
    assert location.country == country
    assert location.latitude is not None
    assert location.longitude is not None


def test_default_database_gives_english_city_names(geolite: GeoLocator) -> None:
    location = geolite.locate("2001:4860:4860::8888")
    assert location is not None
    assert location.city == "Mountain View"


@pytest.mark.parametrize("ip", ["10.0.0.1", "127.0.0.1", "192.168.0.1", "::1"])
def test_default_database_skips_private_addresses(geolite: GeoLocator, ip: str) -> None:
    assert geolite.locate(ip) is None


def _reference_is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or site_local
    )


@settings(max_examples=2000, deadline=None)
@given(address=st.ip_addresses())
def test_public_address_check_agrees_with_ipaddress(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    expected = _reference_is_public(address)
    assert is_public_ip(address) == expected
    assert (public_lookup_key(str(address)) is not None) == expected


@pytest.mark.parametrize(
    "network",
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "224.0.0.0/4", "fc00::/7"],
)
def test_public_address_check_at_network_edges(network: str) -> None:
    net = ipaddress.ip_network(network)
    for address in (
        net.network_address - 1,
        net.network_address,
        net.broadcast_address,
        net.broadcast_address + 1,
    ):
        assert is_public_ip(address) == _reference_is_public(address), address
