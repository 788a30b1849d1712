"""The values of filter conditions, parsed for the type of the property they are compared
with (a ValueError says why one does not fit)."""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from decimal import Decimal

from eventpipe.schemas import Field
from eventpipe.schemas.ip_addresses import IP_RULE, analyse_ip

_INT_RE = re.compile(r"[+-]?[0-9]{1,20}")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")


def parse_int(text: str, bit_size: int) -> int:
    """An integer within the signed range of `bit_size` bits, or ValueError."""
    if not _INT_RE.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not an integer")
    value = int(text.strip())
    limit = 1 << (bit_size - 1)
    if not -limit <= value < limit:
        raise ValueError(f"{text!r} is out of range for a {bit_size}-bit int")
    return value


def parse_float(text: str) -> float:
    """A finite number written in decimal or scientific notation, or ValueError."""
    if not _NUMBER_RE.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a number")
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is out of range")
    return value


def number_or_none(text: str) -> float | None:
    """`text` as a number (`parse_float`), or None when it is not one."""
    try:
        return parse_float(text)
    except ValueError:
        return None


def parse_decimal(text: str) -> Decimal:
    """A decimal number, or ValueError."""
    if not _NUMBER_RE.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not a decimal number")
    return Decimal(text.strip())  # the pattern admits only what Decimal reads


def parse_datetime(text: str) -> dt.datetime:
    """An ISO 8601 date or datetime as an aware UTC datetime (naive means UTC), or ValueError."""
    stripped = text.strip()
    if len(stripped) > 64 or not stripped[:4].isdigit():
        raise ValueError(f"{text!r} is not an ISO 8601 datetime")
    try:
        value = dt.datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 datetime") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def parse_uuid(text: str) -> str:
    """The canonical (lowercase, hyphenated) form of a UUID, or ValueError."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not a UUID") from None


def parse_ip(text: str) -> str:
    """The stored form of a client IP address (`schemas.ip_addresses`: `::ffff:192.0.2.1`
    is `192.0.2.1`), or ValueError (not an address, zone-scoped or multicast)."""
    canonical = analyse_ip(text.strip()).canonical
    if canonical is None:
        raise ValueError(f"{text!r} is not {IP_RULE}")
    return canonical


_PARSERS = {
    "float": parse_float,
    "decimal": parse_decimal,
    "datetime": parse_datetime,
    "uuid": parse_uuid,
    "ip": parse_ip,
}


def typed_value(f: Field, text: str) -> object:
    """The value `text` converted to the type of field `f` (ValueError when it does not fit)."""
    if f.kind == "int":
        return parse_int(text, f.bit_size or 64)
    parse = _PARSERS.get(f.kind)
    return text if parse is None else parse(text)
