"""User agent parsing: real strings in, seed 000's names, versions and device types out."""

from __future__ import annotations

from pathlib import Path

import pytest
import ua_parser
from ua_parser import Domain

from eventpipe.transforms.enrich.user_agent import (
    UA_CACHE_SIZE,
    UserAgentInfo,
    format_version,
    load_resolver,
    parse_user_agent,
)

CASES_FILE = Path(__file__).with_name("user_agents.tsv")


def _load_cases() -> list[tuple[str, tuple[str | None, ...]]]:
    cases = []
    for line in CASES_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        ua, *expected = line.split("\t")
        cases.append((ua, tuple(None if value == "-" else value for value in expected)))
    return cases


CASES = _load_cases()


def test_the_table_covers_every_family() -> None:
    assert len(CASES) >= 60
    browsers = {expected[0] for _, expected in CASES}
    assert {"Chrome", "Safari", "Edge", "Firefox", "Samsung Internet", "Opera", "Other"} <= browsers
    systems = {expected[3] for _, expected in CASES}
    assert {"Android", "Windows", "macOS", "iOS", "Linux", "Chrome OS", "Other"} <= systems
    devices = {expected[6] for _, expected in CASES}
    assert {"desktop", "mobile", "tablet", "bot"} <= devices


@pytest.mark.parametrize(("ua", "expected"), CASES, ids=[f"ua{i}" for i in range(len(CASES))])
def test_parse_user_agent(ua: str, expected: tuple[str | None, ...]) -> None:
    info = parse_user_agent(ua)
    assert info.fields() == expected
    assert info.is_bot == (expected[6] == "bot")


@pytest.mark.parametrize(
    ("ua", "browser", "other", "os_version"),
    [
        # Internet Explorer is not Edge.
        (
            "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
            "Other",
            "IE",
            "7",
        ),
        # The OS version is the OS's own, never the browser's.
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) FxiOS/118.0 Mobile/15E148 Safari/605.1.15",
            "Firefox",
            None,
            "16.6",
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/119.0.0.0 Safari/537.36",
            "Chrome",
            None,
            "14541.0.0",
        ),
    ],
)
def test_families_and_versions_that_are_easy_to_get_wrong(
    ua: str, browser: str, other: str | None, os_version: str
) -> None:
    info = parse_user_agent(ua)
    assert (info.browser_name, info.browser_other, info.os_version) == (browser, other, os_version)


def test_chrome_os_has_a_space() -> None:
    ua = (
        "Mozilla/5.0 (X11; CrOS armv7l 13597.84.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/91.0.4472.114 Safari/537.36"
    )
    assert parse_user_agent(ua).os_name == "Chrome OS"


@pytest.mark.parametrize("ua", ["", "   ", "-", "x", "Mozilla/5.0"])
def test_unknown_strings_give_no_names(ua: str) -> None:
    info = parse_user_agent(ua)
    assert info.browser_name is None
    assert info.os_name is None
    assert not info.is_bot


def test_empty_string_gives_an_empty_info() -> None:
    assert parse_user_agent("") == UserAgentInfo()


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("120", "0", "6099"), "120.0.6099"),
        (("17", "1", None), "17.1"),
        (("10", None, "3"), "10"),
        (("XP", None, None), "XP"),
        (("", None, None), None),
        ((None, None, None), None),
    ],
)
def test_format_version(parts: tuple[str | None, ...], expected: str | None) -> None:
    assert format_version(*parts) == expected


def test_cache_is_bounded() -> None:
    assert parse_user_agent.cache_info().maxsize == UA_CACHE_SIZE == 65_536


def test_uses_the_native_backend_when_installed() -> None:
    pytest.importorskip("ua_parser_rs")
    assert type(load_resolver()).__module__ == "ua_parser.regex"


def test_fallback_resolver_agrees_with_the_fast_one() -> None:
    basic = ua_parser.BasicResolver(ua_parser.load_builtins())
    fast = load_resolver()
    for ua, _ in CASES[::8]:
        assert basic(ua, Domain.ALL).complete() == fast(ua, Domain.ALL).complete()
