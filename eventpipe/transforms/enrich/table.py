"""The enrichment stage on whole Arrow tables of events.

Every enrichment works on DISTINCT values, never per row in Python: user
agents and IPs go through an `ArrowMemo` (what was derived for each value
seen so far, as Arrow columns: a warm batch is a dictionary encoding, a dict
lookup per distinct value and `take`s; only new values are parsed / looked
up, through LRU-cached functions); names and query strings are dictionary-encoded per batch and
decoded once per distinct value. Values the event carries always win over
derived ones; the nested `context` struct is rebuilt with the exact types of
`arrow_schema()`, and sub-objects stay null where the event had none and
nothing was derived.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from eventpipe.schemas.event_schema import arrow_schema
from eventpipe.transforms.enrich.campaign import utm_values, utm_values_from_url
from eventpipe.transforms.enrich.geoip import GEO_CACHE_SIZE, GeoLocator
from eventpipe.transforms.enrich.ip_policy import DROP, KEEP, MASK, check_ip_policy, masked_ip
from eventpipe.transforms.enrich.memo import ArrowMemo
from eventpipe.transforms.enrich.names import normalise_browser_name, normalise_os_name
from eventpipe.transforms.enrich.user_agent import (
    BOT,
    UA_CACHE_SIZE,
    load_resolver,
    parse_user_agent,
)

_STRING = pa.string()
_FLOAT = pa.float64()


@dataclass(frozen=True)
class EnrichOptions:
    """Options of the enrichment stage (flags --geoip-db, --ip-policy, --drop-bots)."""

    geoip_db: str | None = None  # MaxMind City db, any Beam path; None = embedded GeoLite2 City
    ip_policy: str = KEEP  # keep | mask | drop: what is stored in context.ip (after geolocation)
    drop_bots: bool = False  # move rows whose context.device.type is "bot" to EnrichResult.bots

    def check(self) -> EnrichOptions:
        """The options if valid, else ValueError naming the bad one."""
        check_ip_policy(self.ip_policy)
        return self


@dataclass
class EnrichStats:
    """Counts of one `enrich` call (for metrics and benchmarks)."""

    rows: int = 0
    new_user_agents: int = 0  # not seen before by this Enricher: parsed in this call
    new_ips: int = 0  # not seen before by this Enricher: looked up in this call
    browsers_derived: int = 0
    locations_derived: int = 0
    campaigns_derived: int = 0
    bots: int = 0


@dataclass
class EnrichResult:
    """Enriched events, and the bot rows removed when `drop_bots` is set."""

    events: pa.Table
    bots: pa.Table
    stats: EnrichStats = field(default_factory=EnrichStats)


class Enricher:
    """User agent, IP location, IP policy and campaign enrichment of event tables.

    Cheap to build and to pickle (only the options travel); `setup` loads the
    user agent parser and the MaxMind reader once per worker.
    """

    def __init__(self, options: EnrichOptions | None = None) -> None:
        self.options = (options or EnrichOptions()).check()
        self._geo: GeoLocator | None = None
        self._ua_memo: ArrowMemo | None = None
        self._ip_memo: ArrowMemo | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["options"])  # type: ignore[misc]

    @property
    def geo(self) -> GeoLocator:
        """The IP locator (loaded by `setup`)."""
        if self._geo is None:
            self.setup()
        assert self._geo is not None
        return self._geo

    def setup(self) -> None:
        """Load the heavy resources: the user agent resolver and the City database."""
        load_resolver()
        if self._geo is None:
            self._geo = GeoLocator(self.options.geoip_db)
            self._ua_memo = ArrowMemo(_ua_values, [_STRING] * 7, UA_CACHE_SIZE)
            self._ip_memo = ArrowMemo(self._ip_values, _IP_TYPES, GEO_CACHE_SIZE)

    def teardown(self) -> None:
        """Release the database (and its temporary local copy, if any)."""
        if self._geo is not None:
            self._geo.close()
            self._geo = None
            self._ua_memo = self._ip_memo = None

    def cache_stats(self) -> dict[str, tuple[int, int]]:
        """(hits, misses) per memo ("user_agent", "ip") since setup.

        Counted per distinct value per batch: a miss is a value parsed / looked up.
        """
        return {
            name: (memo.hits, memo.misses)
            for name, memo in (("user_agent", self._ua_memo), ("ip", self._ip_memo))
            if memo is not None
        }

    def enrich(self, events: pa.Table) -> EnrichResult:
        """Enrich a table of events (schema `arrow_schema()`); see the module doc.

        Columns beyond the schema (e.g. the normaliser's archive column) pass through.
        """
        schema = arrow_schema()
        extras = [name for name in events.column_names if name not in schema.names]
        table = conform(events, schema)
        stats = EnrichStats(rows=table.num_rows)
        if table.num_rows == 0:
            return EnrichResult(table, table, stats)
        context = table.column("context").combine_chunks()
        context_type = schema.field("context").type
        children = {f.name: pc.struct_field(context, f.name) for f in context_type}

        if self._geo is None:
            self.setup()
        self._enrich_user_agent(children, stats)
        self._enrich_location_and_ip(children, stats)
        self._enrich_campaign(children, stats)

        new_context = pa.StructArray.from_arrays(
            [children[f.name] for f in context_type],
            fields=list(context_type),
            mask=context.is_null(),
        )
        index = schema.get_field_index("context")
        table = table.set_column(index, schema.field("context"), new_context)
        for name in extras:
            table = table.append_column(events.schema.field(name), events[name])

        is_bot = pc.fill_null(
            pc.equal(pc.struct_field(new_context, ["device", "type"]), BOT), False
        )
        stats.bots = pc.sum(is_bot).as_py() or 0
        if self.options.drop_bots and stats.bots:
            return EnrichResult(table.filter(pc.invert(is_bot)), table.filter(is_bot), stats)
        return EnrichResult(table, table.slice(0, 0), stats)

    def _enrich_user_agent(self, children: dict[str, pa.Array], stats: EnrichStats) -> None:
        browser, os, device = children["browser"], children["os"], children["device"]
        browser_name = pc.struct_field(browser, "name")
        os_name = pc.struct_field(os, "name")
        device_type = pc.struct_field(device, "type")
        has_type = _non_empty(device_type)
        needed = pc.invert(
            pc.and_(pc.and_(_non_empty(browser_name), _non_empty(os_name)), has_type)
        )
        user_agents = _null_where(pc.invert(needed), children["userAgent"])
        assert self._ua_memo is not None
        misses = self._ua_memo.misses
        derived = self._ua_memo.lookup(user_agents)
        stats.new_user_agents = self._ua_memo.misses - misses
        (b_name, b_other, b_version, o_name, o_other, o_version, d_type) = derived
        children["browser"] = _named_object(
            browser, normalise_browser_name, b_name, b_other, b_version
        )
        children["os"] = _named_object(os, normalise_os_name, o_name, o_other, o_version)
        stats.browsers_derived = (
            pc.sum(pc.and_(pc.invert(_non_empty(browser_name)), b_name.is_valid())).as_py() or 0
        )
        children["device"] = _replace_fields(
            device, {"type": pc.if_else(has_type, device_type, d_type)}, d_type.is_valid()
        )

    def _ip_values(self, ip: str) -> tuple[Any, ...]:
        """(city, country, latitude, longitude, stored ip) of one address."""
        location = self.geo.locate(ip) or (None, None, None, None)
        stored = masked_ip(ip) if self.options.ip_policy == MASK else None
        return (*location, stored)

    def _enrich_location_and_ip(self, children: dict[str, pa.Array], stats: EnrichStats) -> None:
        """Location from the IP where the event has none; then the IP policy."""
        location = children["location"]
        parts = {name: pc.struct_field(location, name) for name in _LOCATION_FIELDS}
        carried = _any_valid(parts.values())
        ips = children["ip"]
        assert self._ip_memo is not None
        misses = self._ip_memo.misses
        *derived, masked = self._ip_memo.lookup(ips)
        stats.new_ips = self._ip_memo.misses - misses
        derived = [_null_where(carried, column) for column in derived]
        found = _any_valid(derived)
        stats.locations_derived = pc.sum(found).as_py() or 0
        replacements = {
            name: pc.coalesce(parts[name], value)
            for name, value in zip(_LOCATION_FIELDS, derived, strict=True)
        }
        children["location"] = _replace_fields(location, replacements, found)
        policy = self.options.ip_policy
        if policy == MASK:
            children["ip"] = masked
        elif policy == DROP:
            children["ip"] = pa.nulls(len(ips), _STRING)

    def _enrich_campaign(self, children: dict[str, pa.Array], stats: EnrichStats) -> None:
        campaign = children["campaign"]
        names = [f.name for f in campaign.type]
        parts = {name: pc.struct_field(campaign, name) for name in names}
        absent = pc.invert(_any_valid(parts.values()))
        page = children["page"]
        search = _null_where(pc.invert(absent), pc.struct_field(page, "search"))
        _, from_search = map_distinct(search, utm_values, [_STRING] * len(names))
        found_in_search = _any_valid(from_search)
        url = pc.struct_field(page, "url")
        url_wanted = pc.and_(
            pc.and_(absent, pc.invert(found_in_search)),
            pc.fill_null(pc.match_substring(url, "utm_", ignore_case=True), False),
        )
        _, from_url = map_distinct(
            _null_where(pc.invert(url_wanted), url), utm_values_from_url, [_STRING] * len(names)
        )
        found = pc.or_(found_in_search, _any_valid(from_url))
        stats.campaigns_derived = pc.sum(found).as_py() or 0
        replacements = {
            name: pc.coalesce(parts[name], from_search[i], from_url[i])
            for i, name in enumerate(names)
        }
        children["campaign"] = _replace_fields(campaign, replacements, found)


_LOCATION_FIELDS = ("city", "country", "latitude", "longitude")
_IP_TYPES = (_STRING, _STRING, _FLOAT, _FLOAT, _STRING)


def conform(events: pa.Table, schema: pa.Schema) -> pa.Table:
    """`events` with exactly `schema` (columns selected in order and cast if needed)."""
    if events.schema.equals(schema):
        return events
    return events.select(schema.names).cast(schema)


def map_distinct(
    values: pa.Array,
    fn: Callable[[Any], Sequence[Any] | None],
    types: Sequence[pa.DataType],
) -> tuple[int, list[pa.Array]]:
    """Apply `fn` once per distinct non-null value; spread its tuple back to the rows.

    Returns (number of distinct values, one array per element of the tuple);
    a null value, or `fn` returning None, gives nulls in every output array.
    """
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.to_pylist()
    if not distinct:
        return 0, [pa.nulls(len(values), type_) for type_ in types]
    missing = (None,) * len(types)
    results = [fn(value) or missing for value in distinct]
    indices = encoded.indices
    columns = [
        pa.array(column, type=type_).take(indices)
        for column, type_ in zip(zip(*results, strict=True), types, strict=True)
    ]
    return len(distinct), columns


def _ua_values(ua: str) -> tuple[str | None, ...]:
    return parse_user_agent(ua).fields()


def _named_object(
    given: pa.StructArray,
    normalise: Callable[[str | None], tuple[str | None, str | None]],
    derived_name: pa.Array,
    derived_other: pa.Array,
    derived_version: pa.Array,
) -> pa.StructArray:
    """browser/os: a given object with a name is kept, its name normalised;
    otherwise name and other come from the user agent, and version is the
    given one if any, else the user agent's."""
    name = pc.struct_field(given, "name")
    other = pc.struct_field(given, "other")
    version = pc.struct_field(given, "version")
    _, (normal_name, normal_other) = map_distinct(name, normalise, [_STRING, _STRING])
    carried = normal_name.is_valid()  # a blank name is no name
    replacements = {
        "name": pc.if_else(carried, normal_name, derived_name),
        "other": pc.if_else(carried, pc.coalesce(normal_other, other), derived_other),
        "version": pc.if_else(carried, version, pc.coalesce(version, derived_version)),
    }
    return _replace_fields(given, replacements, derived_name.is_valid())


def _replace_fields(
    given: pa.StructArray, replacements: dict[str, pa.Array], derived: pa.Array
) -> pa.StructArray:
    """`given` with some fields replaced; valid where it was valid or `derived` is true."""
    arrays = [
        replacements[f.name] if f.name in replacements else pc.struct_field(given, f.name)
        for f in given.type
    ]
    valid = pc.or_(given.is_valid(), pc.fill_null(derived, False))
    return pa.StructArray.from_arrays(arrays, fields=list(given.type), mask=pc.invert(valid))


def _any_valid(arrays: Any) -> pa.Array:
    result = None
    for array in arrays:
        result = array.is_valid() if result is None else pc.or_(result, array.is_valid())
    assert result is not None
    return result


def _non_empty(strings: pa.Array) -> pa.Array:
    """True where the string is neither null nor empty."""
    return pc.fill_null(pc.greater(pc.utf8_length(strings), 0), False)


def _null_where(condition: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(condition, pa.scalar(None, values.type), values)
