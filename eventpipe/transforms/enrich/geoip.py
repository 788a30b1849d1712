"""IP -> location with a MaxMind City database (GeoLite2-City or GeoIP2-City).

The reader is the maxminddb C extension over a memory-mapped file when it is
available. The database path may be any Beam filesystem path: a non-local one
(gs://...) is copied to a local temporary file first. Without a path, the
GeoLite2 City database of the `maxminddb-geolite2` package is used.
"""

from __future__ import annotations

import bisect
import ipaddress
import os
import re
import shutil
import socket
import tempfile
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import maxminddb

GEO_CACHE_SIZE = 65_536
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class Location(NamedTuple):
    """What the database knows about an address; unknown fields are None."""

    city: str | None = None
    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None


def default_database_path() -> str:
    """Path of the GeoLite2 City database shipped in `maxminddb-geolite2`."""
    from _maxminddb_geolite2 import geolite2_database

    return geolite2_database()


# IPv4 networks with no geography: this host, private, loopback, link-local,
# IETF protocol assignments, documentation, benchmarking, multicast, reserved
# and broadcast (the is_private/is_loopback/... networks of `ipaddress`).
_V4_NON_PUBLIC = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/29", "192.0.0.170/31", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
]  # fmt: skip
_V4_RANGES = sorted((int(n.network_address), int(n.broadcast_address)) for n in _V4_NON_PUBLIC)
_V4_STARTS = [start for start, _ in _V4_RANGES]
# IPv6: only global unicast (2000::/3) is public, minus IETF protocol
# assignments (2001::/23) and documentation (2001:db8::/32).
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_NON_PUBLIC = [ipaddress.IPv6Network("2001::/23"), ipaddress.IPv6Network("2001:db8::/32")]


def is_public_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for private, loopback, link-local, site-local, reserved, multicast and
    unspecified addresses; an IPv4-mapped IPv6 address is judged by its IPv4 part."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return _is_public_v4(int(address))
    return address in _V6_GLOBAL_UNICAST and not any(address in n for n in _V6_NON_PUBLIC)


def _is_public_v4(value: int) -> bool:
    position = bisect.bisect_right(_V4_STARTS, value) - 1
    return position < 0 or value > _V4_RANGES[position][1]


def public_lookup_key(ip: str) -> str | None:
    """The string to look up for `ip`, or None when it is invalid or not public (fast path)."""
    try:
        return ip if _is_public_v4(int.from_bytes(socket.inet_pton(socket.AF_INET, ip))) else None
    except (OSError, ValueError):  # not IPv4 text (ValueError: an embedded NUL)
        pass
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return None
    if address.ipv4_mapped is not None:
        mapped = address.ipv4_mapped
        return str(mapped) if _is_public_v4(int(mapped)) else None
    return ip if is_public_ip(address) else None


def localise_path(path: str) -> tuple[str, bool]:
    """(local path, is temporary copy) for a local or Beam filesystem path."""
    if path.startswith("file://"):
        return path[len("file://") :], False
    if not _SCHEME.match(path):
        return path, False
    from apache_beam.io.filesystems import FileSystems  # only for remote paths

    fd, local = tempfile.mkstemp(prefix="geoip-", suffix=".mmdb")
    with os.fdopen(fd, "wb") as out, FileSystems.open(path) as src:
        shutil.copyfileobj(src, out, length=1 << 20)
    return local, True


def _open_reader(path: str) -> maxminddb.Reader:
    try:
        return maxminddb.open_database(path, maxminddb.MODE_MMAP_EXT)
    except (ValueError, ImportError):  # C extension not built: pure-Python mmap reader
        return maxminddb.open_database(path, maxminddb.MODE_MMAP)


class GeoLocator:
    """City lookups on one MaxMind database, with a bounded LRU cache."""

    def __init__(self, path: str | None = None, cache_size: int = GEO_CACHE_SIZE) -> None:
        self.source = path or default_database_path()
        self._local, self._temporary = localise_path(self.source)
        self._reader = _open_reader(self._local)
        metadata = self._reader.metadata()
        self.database_type: str = metadata.database_type
        self.build_date: datetime = datetime.fromtimestamp(metadata.build_epoch, tz=UTC)
        self.locate = lru_cache(maxsize=cache_size)(self._locate)

    def _locate(self, ip: str) -> Location | None:
        """Location of `ip`, or None (invalid, non-public, or unknown address)."""
        key = public_lookup_key(ip)  # ::ffff:a.b.c.d is looked up as a.b.c.d
        if key is None:
            return None
        try:
            record = self._reader.get(key)
        except ValueError:  # an IPv6 address in an IPv4-only database
            return None
        if not record:
            return None
        return location_from_record(record)

    def cache_info(self) -> tuple[int, int, int]:
        """(hits, misses, current size) of the lookup cache."""
        info = self.locate.cache_info()  # type: ignore[attr-defined]
        return info.hits, info.misses, info.currsize

    def describe(self) -> str:
        """One line for logs: source, type and build date of the database."""
        return f"{self.database_type} {self.build_date:%Y-%m-%d} ({self.source})"

    def close(self) -> None:
        """Close the reader and remove a temporary local copy."""
        self._reader.close()
        if self._temporary and os.path.exists(self._local):
            os.remove(self._local)


def location_from_record(record: dict[str, Any]) -> Location | None:
    """Location from a City record: English city name, ISO country, coordinates."""
    city = (record.get("city") or {}).get("names", {}).get("en")
    country = (record.get("country") or {}).get("iso_code")
    position = record.get("location") or {}
    latitude = position.get("latitude")
    longitude = position.get("longitude")
    if city is None and country is None and latitude is None and longitude is None:
        return None
    return Location(
        city=city,
        country=country,
        latitude=None if latitude is None else float(latitude),
        longitude=None if longitude is None else float(longitude),
    )
