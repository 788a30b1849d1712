"""Synthetic visitors and the valid events they send (seed 000's event model).

A `Visitor` is one client of one source connection: a browser, a crawler, a
script, a mobile app install or a backend. It carries its identity (anonymousId,
later a userId), its session, its request IP, its own clock skew and the shared
context its SDK puts on every batch. `EventFactory` keeps a pool of visitors and
returns their next event, always valid; `invalid.py` breaks events on purpose.

Times are epoch milliseconds; `clock` is true time, the client sees `clock + skew`.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eventpipe.sample import catalog, network, user_agents
from eventpipe.sample.catalog import Source
from eventpipe.sample.user_agents import Agent

Event = dict[str, Any]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE_PREFIX: dict[int, str] = {}


class FastRandom(random.Random):
    """`random.Random` with cheaper randint/randrange/choice (one `random()` call each).

    Same seed, same sequence; the float-scaling used here is uniform enough for
    synthetic data (ranges are far below 2**53) and several times faster than the
    exact rejection sampling of the base class.
    """

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            return int(self.random() * start)
        return start + step * int(self.random() * ((stop - start + step - 1) // step))

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds and 'Z'."""
    minutes, rem = divmod(ms, MINUTE_MS)
    prefix = _MINUTE_PREFIX.get(minutes)
    if prefix is None:
        if len(_MINUTE_PREFIX) > 200_000:
            _MINUTE_PREFIX.clear()
        stamp = _EPOCH + timedelta(minutes=minutes)
        prefix = _MINUTE_PREFIX[minutes] = stamp.strftime("%Y-%m-%dT%H:%M:")
    sec, milli = divmod(rem, 1000)
    return f"{prefix}{sec:02d}.{milli:03d}Z"


def uuid4(rng: random.Random) -> str:
    """A random (version 4) UUID string drawn from `rng`."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def new_user_id(rng: random.Random) -> str:
    """A user id as customer systems make them: numeric, prefixed or an e-mail."""
    r = rng.random()
    if r < 0.5:
        return str(rng.randint(100_000_000, 999_999_999))
    if r < 0.85:
        return f"usr_{rng.getrandbits(60):015x}"
    return f"{rng.choice(catalog.FIRST_NAMES).lower()}{rng.randint(1, 9999)}@example.net"


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


_LOCALE_CUM = _cumulative([w for _, _, w in catalog.LOCALES])
_TRACK_CUM = {k: _cumulative([w for _, w, _ in v]) for k, v in catalog.TRACK_EVENTS.items()}
_WEB_SOURCES = [s for s in catalog.SOURCES if s.kind == "web"]
_SERVER_SOURCES = [s for s in catalog.SOURCES if s.kind == "server"]
_BY_KIND = {s.kind: s for s in catalog.SOURCES}
_KIND_CUM = _cumulative([66, 10, 8, 4, 7, 5])
_KINDS = ("web", "ios", "android", "server", "bot", "script")
SESSION_OBJECT, SESSION_ALIASES, SESSION_NONE = 0, 1, 2


def _web_site(v: Visitor) -> str:
    """The website of the visitor's source (the shop for an app's odd page call)."""
    return v.source.site if v.source.site in catalog.SITES else "shop"


@dataclass(slots=True)
class Visitor:
    """One client of one source connection and everything its next event depends on."""

    kind: str  # web | ios | android | server | bot | script
    source: Source
    anonymous_id: str | None
    user_id: str | None
    ip: str
    agent: Agent | None
    clock: int
    skew: int
    events_left: int
    shared: dict[str, Any]  # context the SDK sends once per batch
    screen: dict[str, Any] | None
    session_style: int
    session_id: int = 0
    session_left: int = 0
    session_start: bool = False
    both_timestamps: bool = False
    no_timestamp: float = 0.03
    no_message_id: float = 0.0
    ip_mode: str | None = None  # a special context.ip value this client always sends
    identify_after: int = -1
    group_index: int = 0
    count: int = 0
    page: int = 0
    channel: str | None = None


class EventFactory:
    """A pool of concurrent visitors over a time window; hands out their next events."""

    def __init__(self, rng: random.Random, start_ms: int, end_ms: int, pool_size: int) -> None:
        self.rng = rng
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.pool = [self.new_visitor() for _ in range(pool_size)]

    # visitors ------------------------------------------------------------------------------

    def pick(self) -> Visitor:
        """A random live visitor (a finished one is replaced by a newcomer)."""
        i = self.rng.randrange(len(self.pool))
        v = self.pool[i]
        if v.events_left <= 0 or v.clock >= self.end_ms - 2 * HOUR_MS:
            v = self.pool[i] = self.new_visitor()
        return v

    def new_visitor(self) -> Visitor:
        """A newcomer starting at a random time of the window."""
        rng = self.rng
        kind = _KINDS[bisect.bisect_right(_KIND_CUM, rng.random() * _KIND_CUM[-1])]
        if kind in ("web", "bot"):
            source = _WEB_SOURCES[0] if rng.random() < 0.65 else _WEB_SOURCES[1]
        elif kind == "server":
            source = rng.choice(_SERVER_SOURCES)
        elif kind == "script":
            source = rng.choice((*_WEB_SOURCES, *_SERVER_SOURCES))
        else:
            source = _BY_KIND[kind]
        locale, tz, _ = catalog.LOCALES[
            bisect.bisect_right(_LOCALE_CUM, rng.random() * _LOCALE_CUM[-1])
        ]
        r = rng.random()
        skew = (
            rng.randint(-1500, 1500)
            if r < 0.85
            else rng.randint(-900_000, 900_000)
            if r < 0.95
            else rng.choice((-1, 1)) * (rng.randint(1, 9) * HOUR_MS + rng.randint(-60_000, 60_000))
        )
        v = Visitor(
            kind=kind,
            source=source,
            anonymous_id=uuid4(rng),
            user_id=None,
            ip=network.client_ip(rng),
            agent=None,
            clock=self.start_ms + rng.randrange(self.end_ms - self.start_ms - HOUR_MS),
            skew=skew,
            events_left=1 + int(rng.expovariate(1 / 45)),
            shared={"library": source.library},
            screen=None,
            session_style=SESSION_NONE,
            group_index=rng.randrange(40),
            both_timestamps=rng.random() < 0.15,
            no_message_id=0.5 if rng.random() < 0.04 else 0.0,
            channel=rng.choice((None, None, kind if kind in ("web", "server") else "mobile")),
        )
        getattr(self, f"_setup_{kind}")(v, locale, tz)
        return v

    def _setup_web(self, v: Visitor, locale: str, tz: str) -> None:
        rng = self.rng
        agent = v.agent = user_agents.pick_browser(rng)
        v.shared = {"library": v.source.library, "locale": locale, "userAgent": agent.ua}
        if rng.random() < 0.8:
            v.shared["timezone"] = tz
        if rng.random() < 0.04 and agent.browser:
            v.shared["browser"] = {"name": agent.browser}
        elif rng.random() < 0.04 and agent.os:
            v.shared["os"] = {"name": agent.os}
        if rng.random() < 0.7:
            table = catalog.DESKTOP_SCREENS if agent.device_type == "desktop" else (
                catalog.MOBILE_SCREENS)  # fmt: skip
            w, h, d = rng.choice(table)
            v.screen = {"width": w, "height": h, "density": d}
        v.session_style = rng.choices((SESSION_OBJECT, SESSION_ALIASES, SESSION_NONE),
                                      (80, 15, 5))[0]  # fmt: skip
        v.identify_after = rng.randint(1, 30) if rng.random() < 0.35 else -1
        if rng.random() < 0.03:
            v.ip_mode = rng.choice(network.SPECIAL_IPS)

    def _setup_bot(self, v: Visitor, locale: str, tz: str) -> None:
        v.agent = user_agents.pick_bot(self.rng)
        v.shared = {"library": v.source.library, "userAgent": v.agent.ua}
        if self.rng.random() < 0.5:
            v.shared["locale"] = "en-US"
        v.events_left = 1 + int(self.rng.expovariate(1 / 8))
        v.channel = None

    def _setup_script(self, v: Visitor, locale: str, tz: str) -> None:
        v.agent = user_agents.pick_script(self.rng)
        v.shared = {"userAgent": v.agent.ua}
        v.user_id = new_user_id(self.rng) if self.rng.random() < 0.5 else None
        v.events_left = 1 + int(self.rng.expovariate(1 / 6))

    def _setup_server(self, v: Visitor, locale: str, tz: str) -> None:
        v.user_id = new_user_id(self.rng)
        if self.rng.random() < 0.8:
            v.anonymous_id = None

    def _setup_ios(self, v: Visitor, locale: str, tz: str) -> None:
        self._setup_app(v, locale, tz, user_agents.pick_ios_app(self.rng))

    def _setup_android(self, v: Visitor, locale: str, tz: str) -> None:
        self._setup_app(v, locale, tz, user_agents.pick_android_app(self.rng))

    def _setup_app(self, v: Visitor, locale: str, tz: str, agent: Agent) -> None:
        rng = self.rng
        v.agent = agent
        ios = v.kind == "ios"
        build = rng.choice(("4120", "4112", "4100", "4083"))
        app = {"name": "Fitly", "version": f"{build[0]}.{build[1:3].lstrip('0') or '0'}.{build[3]}",
               "build": build, "namespace": "com.example.fitly"}  # fmt: skip
        if ios:
            model, name, os_version = rng.choice(catalog.IOS_DEVICES)
            device = {"id": uuid4(rng).upper(), "manufacturer": "Apple", "model": model,
                      "name": name, "type": "ios"}  # fmt: skip
            os = {"name": "iOS" if "iPhone" in model else "iPadOS", "version": os_version}
        else:
            maker, model, os_version = rng.choice(catalog.ANDROID_DEVICES)
            device = {"id": f"{rng.getrandbits(64):016x}", "manufacturer": maker, "model": model,
                      "name": model, "type": "android"}  # fmt: skip
            os = {"name": "Android", "version": os_version}
        if rng.random() < 0.6:
            device["advertisingId"] = uuid4(rng)
            device["adTrackingEnabled"] = rng.random() < 0.7
        if rng.random() < 0.3:
            device["token"] = f"{rng.getrandbits(256):064x}"
        v.shared = {"library": v.source.library, "app": app, "device": device, "os": os,
                    "locale": locale, "timezone": tz}  # fmt: skip
        if rng.random() < 0.5:
            v.shared["userAgent"] = agent.ua
        w, h, d = rng.choice(catalog.MOBILE_SCREENS)
        v.screen = {"width": w, "height": h, "density": d}
        v.session_style = rng.choices((SESSION_OBJECT, SESSION_ALIASES), (85, 15))[0]
        v.identify_after = rng.randint(0, 12) if rng.random() < 0.5 else -1

    # time ----------------------------------------------------------------------------------

    def _advance(self, v: Visitor) -> None:
        """Move the visitor to the moment of its next event (maybe a new session)."""
        rng = self.rng
        if v.session_left <= 0:
            if v.count:  # the next visit; the last one of the window ends before it
                gap = int(rng.expovariate(1 / (9 * HOUR_MS))) + 30 * MINUTE_MS
                v.clock = min(v.clock + gap, max(v.clock, self.end_ms - 2 * HOUR_MS))
            v.session_id = v.clock + v.skew
            v.session_left = 1 + int(rng.expovariate(1 / 14))
            v.session_start = True
            if v.kind in ("ios", "android") and rng.random() < 0.3:
                v.ip = network.client_ip(rng)  # a phone moved to another network
        else:
            v.clock += 300 + int(rng.expovariate(1 / 30_000))
            v.session_start = False
        v.session_left -= 1
        v.events_left -= 1
        v.count += 1

    # events --------------------------------------------------------------------------------

    def next_event(self, v: Visitor, *, request_ip: bool) -> Event:
        """The visitor's next valid event; `request_ip`: a request IP exists (collector)."""
        rng = self.rng
        kind = v.kind
        if kind == "bot":
            etype = "page"
        elif v.user_id is None and 0 <= v.identify_after <= v.count:
            etype = "identify"
        else:
            r = rng.random()
            if kind == "server":
                etype = "identify" if r < 0.1 else "group" if r < 0.15 else "alias" if (
                    r < 0.16) else "track"  # fmt: skip
            elif r < 0.01:
                etype = "group"
            elif r < 0.015 and v.user_id is not None:
                etype = "alias"
            elif kind in ("ios", "android"):
                etype = "screen" if r < 0.42 else "track"
            else:
                etype = "page" if r < (0.55 if kind == "web" else 0.2) else "track"
        return self.event_of_type(v, etype, request_ip=request_ip)

    def event_of_type(self, v: Visitor, etype: str, *, request_ip: bool, commit: bool = True,
                      ) -> Event:  # fmt: skip
        """A valid event of type `etype` from `v` (identity changes only when `commit`)."""
        self._advance(v)
        ev = self._identity(v, etype, commit)
        ctx: dict[str, Any] = {}
        self._type_fields(v, etype, ev, ctx)
        self._context(v, etype, ctx, request_ip)
        if ctx:
            ev["context"] = ctx
        self._ids_and_times(v, ev)
        return ev

    def _identity(self, v: Visitor, etype: str, commit: bool) -> Event:
        """anonymousId / userId (and previousId for alias) of the event, in a new event."""
        rng = self.rng
        ev: Event = {}
        anonymous_id, user_id, previous_id = v.anonymous_id, v.user_id, None
        if v.kind == "bot" and rng.random() < 0.7:
            anonymous_id = uuid4(rng)  # crawlers keep no storage: a new id per hit
        if etype == "identify" and user_id is None:
            user_id = new_user_id(rng)
            if commit:
                v.user_id = user_id
        elif etype == "alias":
            if user_id is None:
                user_id = new_user_id(rng)
            if anonymous_id is not None and rng.random() < 0.6:
                previous_id = anonymous_id  # the anonymous visitor is this user
            else:
                previous_id, user_id = user_id, new_user_id(rng)  # the user got a new id
                if commit:
                    v.user_id = user_id
        if anonymous_id is None and user_id is None:
            anonymous_id = uuid4(rng)
        if anonymous_id is not None:
            ev["anonymousId"] = anonymous_id
        if user_id is not None:
            ev["userId"] = user_id
        if v.channel and rng.random() < 0.5:
            ev["channel"] = v.channel
        ev["type"] = etype
        if previous_id is not None:
            ev["previousId"] = previous_id
        return ev

    def _type_fields(self, v: Visitor, etype: str, ev: Event, ctx: dict[str, Any]) -> None:
        """name/category/event/properties/traits/groupId, as each type permits."""
        rng = self.rng
        if etype == "page" or (v.kind == "web" and etype == "track"):
            ctx["page"] = self._page(v, etype == "page")
        if etype == "page":
            _, _, category, name = catalog.SITES[_web_site(v)][1][v.page]
            ev["name"] = name
            if rng.random() < 0.6:
                ev["category"] = category
            if rng.random() < 0.6:
                ev["properties"] = dict(ctx["page"])
        elif etype == "screen":
            ev["name"] = rng.choice(catalog.SCREENS)
            if rng.random() < 0.5:
                ev["properties"] = {"from": rng.choice(catalog.SCREENS), "tab": rng.randint(0, 4)}
        elif etype == "track":
            key = "server" if v.kind == "server" else v.source.site
            cum = _TRACK_CUM[key]
            name, _, make = catalog.TRACK_EVENTS[key][
                bisect.bisect_right(cum, rng.random() * cum[-1])
            ]
            ev["event"] = name
            if rng.random() < 0.95:
                ev["properties"] = make(rng)
        elif etype == "identify":
            ev["traits"] = catalog.person_traits(rng)
        elif etype == "group":
            ev["groupId"] = f"acct_{1000 + v.group_index}"
            ev["traits"] = catalog.group_traits(rng, v.group_index)

    def _context(self, v: Visitor, etype: str, ctx: dict[str, Any], request_ip: bool) -> None:
        """The per-event context: screen, session, network, location, ip."""
        rng = self.rng
        if v.screen is not None and etype != "alias":
            ctx["screen"] = v.screen
        if v.session_style == SESSION_OBJECT:
            ctx["session"] = (
                {"id": v.session_id, "start": True} if v.session_start
                else {"id": v.session_id} if rng.random() < 0.5
                else {"id": v.session_id, "start": False}
            )  # fmt: skip
        elif v.session_style == SESSION_ALIASES:
            ctx["sessionId"] = v.session_id
            if v.session_start:
                ctx["sessionStart"] = True
        if v.kind in ("ios", "android"):
            wifi = rng.random() < 0.6
            ctx["network"] = {"wifi": wifi, "cellular": not wifi, "bluetooth": rng.random() < 0.3}
            if not wifi:
                ctx["network"]["carrier"] = catalog.CARRIERS[v.group_index % len(catalog.CARRIERS)]
            if v.group_index < 4:
                ctx["location"] = {"latitude": round(rng.uniform(-50, 60), 5),
                                   "longitude": round(rng.uniform(-120, 140), 5),
                                   "speed": round(rng.uniform(0, 4), 2)}  # fmt: skip
        if v.ip_mode and request_ip:
            ctx["ip"] = v.ip_mode
        elif v.kind == "server" and v.group_index % 2:
            ctx["ip"] = v.ip  # a backend forwarding its user's IP

    def _ids_and_times(self, v: Visitor, ev: Event) -> None:
        """messageId (mostly), timestamp in the client's clock (mostly), originalTimestamp."""
        rng = self.rng
        client_ms = v.clock + v.skew
        if rng.random() >= v.no_message_id:
            ev["messageId"] = (
                f"ajs-next-{client_ms}-{uuid4(rng)}" if v.source.site == "saas" and v.kind == "web"
                else uuid4(rng)
            )  # fmt: skip
        if v.both_timestamps:
            ev["originalTimestamp"] = iso_ms(client_ms)
            ev["timestamp"] = iso_ms(client_ms + rng.randint(0, 40))
        elif rng.random() >= v.no_timestamp:
            ev["timestamp"] = iso_ms(client_ms)

    def _page(self, v: Visitor, is_page: bool) -> dict[str, str]:
        rng = self.rng
        origin, pages = catalog.SITES[_web_site(v)]
        previous = v.page
        if is_page or v.count == 1:
            v.page = rng.randrange(len(pages))
        path, title, _, _ = pages[v.page]
        page = {"path": path}
        if v.session_start:
            if rng.random() < 0.5:
                page["referrer"] = rng.choice(catalog.REFERRERS)
        else:
            page["referrer"] = origin + pages[previous][0]
        search = ""
        if v.session_start and rng.random() < 0.35:
            search = "?" + rng.choice(catalog.UTM)
        elif path == "/search":
            search = "?q=" + rng.choice(("rain+jacket", "tent", "gloves"))
        page["search"] = search
        page["title"] = title
        page["url"] = origin + path + search
        return page

    # stamping ------------------------------------------------------------------------------

    def stamp_single(self, v: Visitor, ev: Event) -> Event:
        """Make `ev` self-contained: shared context merged in, connectionId, sentAt, receivedAt."""
        rng = self.rng
        ctx = ev.get("context")
        ev["context"] = ctx = {**v.shared, **ctx} if ctx else dict(v.shared)
        if "ip" not in ctx and rng.random() < 0.9:
            ctx["ip"] = v.ip  # the exporting system recorded the request IP
        sent = v.clock + rng.randint(5, 4000)
        ev["sentAt"] = iso_ms(sent + v.skew)
        ev["receivedAt"] = iso_ms(sent + rng.randint(20, 900))
        ev["connectionId"] = v.source.connection_id
        return ev

    def batch_times(self, v: Visitor) -> tuple[str, str]:
        """(sentAt as the client states it, receivedAt) of a batch just flushed by `v`."""
        sent = v.clock + self.rng.randint(5, 8000)
        return iso_ms(sent + v.skew), iso_ms(sent + self.rng.randint(20, 900))

    def batch_size(self, v: Visitor) -> int:
        """How many events the visitor's SDK puts in one batch (1..50)."""
        rng = self.rng
        if v.kind in ("web", "bot", "script"):
            return 1 if rng.random() < 0.45 else rng.randint(1, 10)
        if v.kind == "server":
            return rng.randint(5, 50)
        return min(30, 1 + int(rng.expovariate(1 / 6)))  # mobile SDKs flush at 30 events
