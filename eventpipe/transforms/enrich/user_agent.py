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
# Lower-case tokens that betray crawlers, monitors, headless browsers and HTTP libraries.
_BOT_SUBSTRINGS = (
    "headless",
    "phantomjs",
    "lighthouse",
    "selenium",
    "webdriver",
    "puppeteer",
    "playwright",
    "uptimerobot",
    "pingdom",
    "statuscake",
    "site24x7",
    "newrelicpinger",
    "datadog",
    "monitoring",
    "crawl",
    "spider",
    "slurp",
    "scrapy",
    "+http",
)
_BOT_PREFIXES = (
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "okhttp",
    "axios",
    "node-fetch",
    "undici",
    "got ",
    "got/",
    "java/",
    "apache-httpclient",
    "libwww-perl",
    "httpie",
    "guzzlehttp",
    "ruby",
    "php/",
    "postmanruntime",
    "insomnia",
)
_BOT_WORDS = re.compile(r"[a-z]bot/|\bbot\b")
_TV_SUBSTRINGS = ("smart-tv", "smarttv", "googletv", "appletv", "hbbtv", "web0s", "netcast")
_TV_WORDS = re.compile(r"\b(?:tv|crkey)\b")
_CONSOLE_SUBSTRINGS = ("playstation", "xbox", "nintendo")
_TABLET_SUBSTRINGS = ("ipad", "tablet", "kindle", "silk/", "playbook")
_MOBILE_SUBSTRINGS = (
    "iphone",
    "ipod",
    "mobi",
    "windows phone",
    "blackberry",
    "bb10",
    "opera mini",
    "symbian",
    "series40",
    "series 40",
    "series60",
    "series 60",
    "j2me",
    "kaios",
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

    def fields(self) -> tuple[str | None, ...]:
        """The string fields, in the order of the memo columns (is_bot follows device_type)."""
        return (
            self.browser_name,
            self.browser_other,
            self.browser_version,
            self.os_name,
            self.os_other,
            self.os_version,
            self.device_type,
        )


_resolver: Resolver | None = None
_resolver_lock = threading.Lock()


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
    lower = ua.lower()
    if (
        family == "Spider"
        or agent_family in BOT_FAMILIES
        or lower.startswith(_BOT_PREFIXES)
        or _contains_any(lower, _BOT_SUBSTRINGS)
        or _BOT_WORDS.search(lower)
    ):
        return BOT
    if _contains_any(lower, _TV_SUBSTRINGS) or _TV_WORDS.search(lower):
        return TV
    if _contains_any(lower, _CONSOLE_SUBSTRINGS):
        return CONSOLE
    mobile = _contains_any(lower, _MOBILE_SUBSTRINGS)
    if (
        _contains_any(lower, _TABLET_SUBSTRINGS)
        or brand == "Generic_Android_Tablet"
        or family == "Generic Tablet"
        or (os_name == "Android" and not mobile)
    ):
        return TABLET
    if mobile or family == "Generic Smartphone" or os_name in ("Android", "iOS"):
        return MOBILE
    if os_name in _DESKTOP_OS or (parsed.os is not None and parsed.os.family != "Other"):
        return DESKTOP
    return None


def _contains_any(text: str, tokens: tuple[str, ...]) -> bool:
    return any(token in text for token in tokens)
