"""User agent -> browser, OS and device type, with ua-parser 1.x.

The resolver is the fastest one installed (ua-parser-rs, then google-re2,
then the pure-`re` one), built once per process without ua-parser's own
cache: the bounded `functools.lru_cache` on `parse_user_agent` caches the
normalised result instead, which is what the enrichment needs.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import ua_parser
from ua_parser import Domain, PartialResult, Resolver

from eventpipe.transforms.enrich.names import normalise_browser_name, normalise_os_name

UA_CACHE_SIZE = 65_536

BOT = "bot"
TV = "tv"
CONSOLE = "console"
TABLET = "tablet"
MOBILE = "mobile"
DESKTOP = "desktop"

# ua-parser families of HTTP libraries, headless browsers and other automation.
BOT_FAMILIES = frozenset(
    {
        "curl",
        "Wget",
        "Python Requests",
        "Python-urllib",
        "Python aiohttp",
        "Go-http-client",
        "okhttp",
        "axios",
        "Apache-HttpClient",
        "Java",
        "HTTPClient",
        "libwww-perl",
        "HTTPie",
        "HeadlessChrome",
        "PhantomJS",
        "Scrapy",
        "PycURL",
        "Guzzle",
        "node-fetch",
        "got",
        "UptimeRobot",
        "PingdomBot",
        "Pingdom",
        "NewRelicPinger",
        "Datadog Agent",
        "StatusCake",
        "Site24x7",
    }
)
# Tokens that betray crawlers, monitors and headless browsers in the raw string.
_BOT_TOKENS = re.compile(
    r"headless|phantomjs|lighthouse|selenium|webdriver|puppeteer|playwright"
    r"|uptimerobot|pingdom|statuscake|site24x7|newrelicpinger|datadog|monitoring"
    r"|crawl|spider|slurp|scrapy|\+https?://|[a-z]bot/|\bbot\b"
    r"|^(?:curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client"
    r"|okhttp|axios|node-fetch|undici|got|java|apache-httpclient|libwww-perl|httpie"
    r"|guzzlehttp|ruby|php|postmanruntime|insomnia)\b",
    re.IGNORECASE,
)
_TV_TOKENS = re.compile(r"smart-?tv|googletv|appletv|\bcrkey\b|hbbtv|web0s|netcast|\btv\b", re.I)
_CONSOLE_TOKENS = re.compile(r"playstation|xbox|nintendo", re.I)
_TABLET_TOKENS = re.compile(r"ipad|tablet|kindle|silk/|playbook", re.I)
_MOBILE_TOKENS = re.compile(
    r"iphone|ipod|mobi|windows phone|blackberry|bb10|opera mini|symbian|series ?[46]0|j2me|kaios",
    re.I,
)
_DESKTOP_OS = frozenset({"Windows", "macOS", "Linux", "Chrome OS"})


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    """What a user agent string says, with seed 000's normalised names."""

    browser_name: str | None = None
    browser_other: str | None = None
    browser_version: str | None = None
    os_name: str | None = None
    os_other: str | None = None
    os_version: str | None = None
    device_type: str | None = None
    is_bot: bool = False


_resolver: Resolver | None = None
_resolver_lock = threading.Lock()


def resolver_name() -> str:
    """The module of the resolver in use (`ua_parser.regex` is ua-parser-rs)."""
    return type(load_resolver()).__module__


def load_resolver() -> Resolver:
    """The process-wide ua-parser resolver, built on first use (thread-safe)."""
    global _resolver
    if _resolver is None:
        with _resolver_lock:
            if _resolver is None:
                fast = ua_parser.RegexResolver or ua_parser.Re2Resolver
                if fast is not None:
                    _resolver = fast(ua_parser.load_lazy_builtins())
                else:
                    _resolver = ua_parser.BasicResolver(ua_parser.load_builtins())
    return _resolver


def format_version(*parts: str | None) -> str | None:
    """Join the parsed parts as "major.minor.patch", stopping at the first missing one."""
    kept: list[str] = []
    for part in parts:
        if not part:
            break
        kept.append(part)
    return ".".join(kept) or None


@lru_cache(maxsize=UA_CACHE_SIZE)
def parse_user_agent(ua: str) -> UserAgentInfo:
    """Parse a user agent string into normalised browser, OS and device type.

    Unknown parts stay None (a string nothing recognises gives an empty info).
    Results are cached (bounded LRU) since user agents repeat heavily.
    """
    if not ua or not ua.strip():
        return UserAgentInfo()
    parsed = load_resolver()(ua, Domain.ALL)
    browser_name = browser_other = browser_version = None
    agent = parsed.user_agent
    if agent is not None and agent.family != "Other":
        browser_name, browser_other = normalise_browser_name(agent.family)
        browser_version = format_version(agent.major, agent.minor, agent.patch)
    os_name = os_other = os_version = None
    os = parsed.os
    if os is not None and os.family != "Other":
        os_name, os_other = normalise_os_name(os.family)
        os_version = format_version(os.major, os.minor, os.patch)
    device_type = _device_type(ua, parsed, os_name)
    return UserAgentInfo(
        browser_name=browser_name,
        browser_other=browser_other,
        browser_version=browser_version,
        os_name=os_name,
        os_other=os_other,
        os_version=os_version,
        device_type=device_type,
        is_bot=device_type == BOT,
    )


def _device_type(ua: str, parsed: PartialResult, os_name: str | None) -> str | None:
    device = parsed.device
    family = device.family if device is not None else ""
    brand = (device.brand or "") if device is not None else ""
    agent_family = parsed.user_agent.family if parsed.user_agent is not None else ""
    if family == "Spider" or agent_family in BOT_FAMILIES or _BOT_TOKENS.search(ua):
        return BOT
    if _TV_TOKENS.search(ua):
        return TV
    if _CONSOLE_TOKENS.search(ua):
        return CONSOLE
    if (
        _TABLET_TOKENS.search(ua)
        or brand == "Generic_Android_Tablet"
        or family == "Generic Tablet"
        or (os_name == "Android" and not _MOBILE_TOKENS.search(ua))
    ):
        return TABLET
    if _MOBILE_TOKENS.search(ua) or family == "Generic Smartphone" or os_name in ("Android", "iOS"):
        return MOBILE
    if os_name in _DESKTOP_OS or (parsed.os is not None and parsed.os.family != "Other"):
        return DESKTOP
    return None


def parse_cache_info() -> tuple[int, int, int]:
    """(hits, misses, current size) of the user agent cache."""
    info = parse_user_agent.cache_info()
    return info.hits, info.misses, info.currsize
