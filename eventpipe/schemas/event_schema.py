"""The event schema: the one definition every other schema is derived from.

The tree below mirrors seed 000's "Get event schema" document field by field.
From it come the Arrow/Parquet schema of the lake (`arrow_schema`), the JSON
document served by `eventpipe schema` and `GET /v1/events/schema`
(`schema_document`), and the leaf paths used by validation and the read API
(`leaf_fields`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

BROWSER_NAMES = ("Chrome", "Safari", "Edge", "Firefox", "Samsung Internet", "Opera", "Other")
OS_NAMES = ("Android", "Windows", "iOS", "macOS", "Linux", "Chrome OS", "Other")
EVENT_TYPES = ("alias", "identify", "group", "page", "screen", "track")


@dataclass(frozen=True)
class Field:
    """One property of the event schema (a leaf, or an object with children)."""

    name: str
    kind: str  # string | int | float | decimal | boolean | datetime | uuid | ip | json | object
    description: str
    read_optional: bool = True
    bit_size: int | None = None
    precision: int | None = None
    scale: int | None = None
    values: tuple[str, ...] | None = None
    children: tuple[Field, ...] = field(default=())


def _s(name: str, description: str, **kw) -> Field:
    return Field(name, "string", description, **kw)


def _obj(name: str, description: str, *children: Field) -> Field:
    return Field(name, "object", description, children=children)


CONTEXT = _obj(
    "context",
    "Context",
    _obj(
        "app",
        "App",
        _s("name", "Name"),
        _s("version", "Version"),
        _s("build", "Build"),
        _s("namespace", "Namespace"),
    ),
    _obj(
        "browser",
        "Browser",
        _s("name", "Name", values=BROWSER_NAMES),
        _s("other", "Other"),
        _s("version", "Version"),
    ),
    _obj(
        "campaign",
        "Campaign",
        _s("name", "Name"),
        _s("source", "Source"),
        _s("medium", "Medium"),
        _s("term", "Term"),
        _s("content", "Content"),
    ),
    _obj(
        "device",
        "Device",
        _s("id", "Id"),
        _s("advertisingId", "Advertising ID"),
        Field("adTrackingEnabled", "boolean", "Ad tracking enabled"),
        _s("manufacturer", "Manufacturer"),
        _s("model", "Model"),
        _s("name", "Name"),
        _s("type", "Type"),
        _s("token", "Token"),
    ),
    Field("ip", "ip", "IP"),
    _obj("library", "Library", _s("name", "Name"), _s("version", "Version")),
    _s("locale", "Locale"),
    _obj(
        "location",
        "Location",
        _s("city", "City"),
        _s("country", "Country"),
        Field("latitude", "float", "Latitude", bit_size=64),
        Field("longitude", "float", "Longitude", bit_size=64),
        Field("speed", "float", "Speed", bit_size=64),
    ),
    _obj(
        "network",
        "Network",
        Field("bluetooth", "boolean", "Bluetooth"),
        _s("carrier", "Carrier"),
        Field("cellular", "boolean", "Cellular"),
        Field("wifi", "boolean", "Wi-Fi"),
    ),
    _obj(
        "os",
        "OS",
        _s("name", "Name", values=OS_NAMES),
        _s("other", "Other"),
        _s("version", "Version"),
    ),
    _obj(
        "page",
        "Page",
        _s("path", "Path"),
        _s("referrer", "Referrer"),
        _s("search", "Search"),
        _s("title", "Title"),
        _s("url", "URL"),
    ),
    _obj("referrer", "Referrer", _s("id", "ID"), _s("type", "Type")),
    _obj(
        "screen",
        "Screen",
        Field("width", "int", "Width", bit_size=16),
        Field("height", "int", "Height", bit_size=16),
        Field("density", "decimal", "Density", precision=3, scale=2),
    ),
    _obj(
        "session",
        "Session",
        Field("id", "int", "ID", bit_size=64),
        Field("start", "boolean", "Start"),
    ),
    _s("timezone", "Timezone"),
    _s("userAgent", "User agent"),
)

EVENT_FIELDS: tuple[Field, ...] = (
    Field("kpid", "uuid", "Krenalis Profile ID"),
    Field("connectionId", "int", "Connection ID", read_optional=False, bit_size=32),
    _s("anonymousId", "Anonymous ID", read_optional=False),
    _s("channel", "Channel"),
    _s("category", "Category"),
    CONTEXT,
    _s("event", "Event"),
    _s("groupId", "Group ID"),
    _s("messageId", "Message ID", read_optional=False),
    _s("name", "Name"),
    Field("properties", "json", "Properties"),
    Field("receivedAt", "datetime", "Received at", read_optional=False),
    Field("sentAt", "datetime", "Sent at", read_optional=False),
    Field("originalTimestamp", "datetime", "Original timestamp", read_optional=False),
    Field("timestamp", "datetime", "Timestamp", read_optional=False),
    Field("traits", "json", "Traits", read_optional=False),
    _s("type", "Type", read_optional=False, values=EVENT_TYPES),
    _s("previousId", "Previous ID"),
    _s("userId", "User ID"),
)

PARTITION_COLUMN = "date"


def arrow_type(f: Field) -> pa.DataType:
    """The Arrow type that stores values of `f` in the lake."""
    if f.kind == "object":
        return pa.struct([arrow_field(c) for c in f.children])
    if f.kind == "int":
        return {16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[f.bit_size or 64]
    if f.kind == "float":
        return pa.float64() if (f.bit_size or 64) == 64 else pa.float32()
    if f.kind == "decimal":
        return pa.decimal128(f.precision or 38, f.scale or 0)
    if f.kind == "boolean":
        return pa.bool_()
    if f.kind == "datetime":
        return pa.timestamp("us", tz="UTC")
    # string, uuid, ip and json (as JSON text) are all stored as UTF-8 strings.
    return pa.string()


def arrow_field(f: Field) -> pa.Field:
    """The Arrow field of `f`; required fields of the row are non-nullable."""
    return pa.field(f.name, arrow_type(f), nullable=f.read_optional)


def arrow_schema() -> pa.Schema:
    """The Arrow/Parquet schema of the event table (the lake's file schema)."""
    return pa.schema([arrow_field(f) for f in EVENT_FIELDS])


def _type_document(f: Field) -> dict:
    doc: dict = {"kind": f.kind}
    if f.kind == "object":
        doc["properties"] = [_field_document(c) for c in f.children]
    if f.bit_size is not None:
        doc["bitSize"] = f.bit_size
    if f.precision is not None:
        doc["precision"] = f.precision
        doc["scale"] = f.scale
    if f.values is not None:
        doc["values"] = list(f.values)
    return doc


def _field_document(f: Field) -> dict:
    doc: dict = {"name": f.name, "type": _type_document(f)}
    if f.read_optional:
        doc["readOptional"] = True
    doc["description"] = f.description
    return doc


def schema_document() -> dict:
    """Seed 000's "Get event schema" response document."""
    return {"schema": {"kind": "object", "properties": [_field_document(f) for f in EVENT_FIELDS]}}


def iter_leaves(
    fields: tuple[Field, ...] = EVENT_FIELDS, prefix: str = ""
) -> Iterator[tuple[str, Field]]:
    """Yield (dotted path, field) for every leaf, depth first, in schema order."""
    for f in fields:
        path = f"{prefix}{f.name}"
        if f.kind == "object":
            yield from iter_leaves(f.children, path + ".")
        else:
            yield path, f


TOP_LEVEL_COLUMNS: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS)
