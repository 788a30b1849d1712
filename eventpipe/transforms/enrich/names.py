"""Browser and OS name normalisation (seed 000's canonical names).

One mapping serves both the names parsed from user agents (ua-parser
families such as "Chrome Mobile iOS" or "Mac OS X") and the names events
carry explicitly ("chrome", "Google Chrome", "MacOS"). A name that maps to a
canonical one comes back as that name with no `other`; any other name comes
back as ("Other", name as given).
"""

from __future__ import annotations

import re
from functools import lru_cache

from eventpipe.schemas.event_schema import BROWSER_NAMES, OS_NAMES

OTHER = "Other"

_BROWSER_ALIASES: dict[str, tuple[str, ...]] = {
    "Chrome": (
        "chrome",
        "google chrome",
        "googlechrome",
        "chrome mobile",
        "chrome mobile ios",
        "chrome mobile webview",
        "chrome webview",
        "android webview",
        "crios",
    ),
    "Safari": (
        "safari",
        "mobile safari",
        "mobile safari ui/wkwebview",
        "apple safari",
        "ios safari",
    ),
    "Edge": (
        "edge",
        "microsoft edge",
        "edge mobile",
        "edg",
        "edga",
        "edgios",
        "microsoft edge mobile",
    ),
    "Firefox": (
        "firefox",
        "mozilla firefox",
        "firefox mobile",
        "firefox ios",
        "firefox beta",
        "firefox alpha",
        "firefox nightly",
        "firefox focus",
        "fxios",
    ),
    "Samsung Internet": ("samsung internet", "samsungbrowser", "samsung browser"),
    "Opera": (
        "opera",
        "opera mini",
        "opera mobile",
        "opera mobi",
        "opera gx",
        "opera touch",
        "opera coast",
        "opera neon",
        "opera tablet",
        "opr",
        "opios",
    ),
}

_OS_ALIASES: dict[str, tuple[str, ...]] = {
    "Android": ("android", "android os"),
    "Windows": (
        "windows",
        "microsoft windows",
        "win32",
        "win64",
        "windows nt",
        "windows 7",
        "windows 8",
        "windows 8.1",
        "windows 10",
        "windows 11",
        "windows xp",
        "windows vista",
    ),
    "macOS": ("macos", "mac os", "mac os x", "macosx", "os x", "osx", "macintosh", "mac"),
    "iOS": ("ios", "iphone os", "ipados", "ipad os"),
    "Linux": (
        "linux",
        "gnu/linux",
        "ubuntu",
        "kubuntu",
        "xubuntu",
        "lubuntu",
        "debian",
        "fedora",
        "red hat",
        "redhat",
        "centos",
        "gentoo",
        "mint",
        "linux mint",
        "arch",
        "arch linux",
        "manjaro",
        "suse",
        "opensuse",
        "slackware",
        "mandriva",
        "elementary os",
        "pop!_os",
    ),
    "Chrome OS": ("chrome os", "chromeos", "cros", "chromium os", "chromiumos"),
}


def _key(name: str) -> str:
    """Comparison key: case-folded, runs of blanks/underscores/dashes as one space."""
    return re.sub(r"[\s_\-]+", " ", name.strip().casefold())


def _index(aliases: dict[str, tuple[str, ...]], canonical: tuple[str, ...]) -> dict[str, str]:
    index = {_key(name): name for name in canonical}
    for name, spellings in aliases.items():
        for spelling in spellings:
            index[_key(spelling)] = name
            index[_key(spelling).replace(" ", "")] = name
    return index


_BROWSER_INDEX = _index(_BROWSER_ALIASES, BROWSER_NAMES)
_OS_INDEX = _index(_OS_ALIASES, OS_NAMES)


@lru_cache(maxsize=4096)
def normalise_browser_name(name: str | None) -> tuple[str | None, str | None]:
    """(canonical browser name, other) for a given or parsed browser name.

    "chrome", "Google Chrome", "Chrome Mobile iOS" -> ("Chrome", None);
    "IE" -> ("Other", "IE"); None or blank -> (None, None).
    """
    return _normalise(name, _BROWSER_INDEX)


@lru_cache(maxsize=4096)
def normalise_os_name(name: str | None) -> tuple[str | None, str | None]:
    """(canonical OS name, other) for a given or parsed OS name.

    "Mac OS X", "MacOS", "OS X" -> ("macOS", None); "ChromeOS" -> ("Chrome OS", None);
    "Ubuntu" -> ("Linux", None); "Windows Phone" -> ("Other", "Windows Phone").
    """
    return _normalise(name, _OS_INDEX)


def _normalise(name: str | None, index: dict[str, str]) -> tuple[str | None, str | None]:
    if name is None or not name.strip():
        return None, None
    key = _key(name)
    canonical = index.get(key) or index.get(key.replace(" ", ""))
    if canonical is not None:
        return canonical, None
    return OTHER, name
