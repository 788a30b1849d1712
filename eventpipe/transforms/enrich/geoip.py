"""IP -> location with a MaxMind City database (GeoLite2-City or GeoIP2-City).

The reader is the maxminddb C extension over a memory-mapped file when it is
available. The database path may be any Beam filesystem path: a non-local one
(gs://...) is copied to a local temporary file first. Without a path, the
GeoLite2 City database of the `maxminddb-geolite2` package is used.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
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


def is_public_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for private, loopback, link-local, reserved, multicast and unspecified."""
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


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
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:a.b.c.d is looked up as a.b.c.d
        if not is_public_ip(address):
            return None
        try:
            record = self._reader.get(address)
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
