"""Browser and OS name normalisation: canonical names, spellings, unknown names."""

from __future__ import annotations

import pytest

from eventpipe.schemas.event_schema import BROWSER_NAMES, OS_NAMES
from eventpipe.transforms.enrich.names import normalise_browser_name, normalise_os_name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Chrome", ("Chrome", None)),
        ("chrome", ("Chrome", None)),
        ("Google Chrome", ("Chrome", None)),
        ("  CHROME ", ("Chrome", None)),
        ("Chrome Mobile", ("Chrome", None)),
        ("Chrome Mobile iOS", ("Chrome", None)),
        ("Chrome Mobile WebView", ("Chrome", None)),
        ("Safari", ("Safari", None)),
        ("Mobile Safari", ("Safari", None)),
        ("Mobile Safari UI/WKWebView", ("Safari", None)),
        ("Edge", ("Edge", None)),
        ("Microsoft Edge", ("Edge", None)),
        ("Edge Mobile", ("Edge", None)),
        ("Firefox", ("Firefox", None)),
        ("Mozilla Firefox", ("Firefox", None)),
        ("Firefox Mobile", ("Firefox", None)),
        ("Firefox iOS", ("Firefox", None)),
        ("Samsung Internet", ("Samsung Internet", None)),
        ("samsung-internet", ("Samsung Internet", None)),
        ("SamsungBrowser", ("Samsung Internet", None)),
        ("Opera", ("Opera", None)),
        ("Opera Mini", ("Opera", None)),
        ("Opera Mobile", ("Opera", None)),
        ("OPR", ("Opera", None)),
        ("Other", ("Other", None)),
        # Internet Explorer is not Edge.
        ("IE", ("Other", "IE")),
        ("Internet Explorer", ("Other", "Internet Explorer")),
        # Unknown names are kept as given in `other`.
        ("Brave", ("Other", "Brave")),
        ("Yandex Browser", ("Other", "Yandex Browser")),
        ("  Vivaldi ", ("Other", "  Vivaldi ")),
        ("Chromium", ("Other", "Chromium")),
        (None, (None, None)),
        ("", (None, None)),
        ("   ", (None, None)),
    ],
)
def test_normalise_browser_name(given: str | None, expected: tuple[str | None, str | None]) -> None:
    assert normalise_browser_name(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Android", ("Android", None)),
        ("android", ("Android", None)),
        ("Windows", ("Windows", None)),
        ("windows", ("Windows", None)),
        ("Microsoft Windows", ("Windows", None)),
        ("Windows 10", ("Windows", None)),
        ("macOS", ("macOS", None)),
        ("Mac OS X", ("macOS", None)),
        ("MacOS", ("macOS", None)),
        ("OS X", ("macOS", None)),
        ("Mac OS", ("macOS", None)),
        ("iOS", ("iOS", None)),
        ("ios", ("iOS", None)),
        ("iPadOS", ("iOS", None)),
        ("iPhone OS", ("iOS", None)),
        ("Linux", ("Linux", None)),
        ("Ubuntu", ("Linux", None)),
        ("Fedora", ("Linux", None)),
        ("Debian", ("Linux", None)),
        ("Red Hat", ("Linux", None)),
        ("Chrome OS", ("Chrome OS", None)),
        ("ChromeOS", ("Chrome OS", None)),
        ("chrome_os", ("Chrome OS", None)),
        ("CrOS", ("Chrome OS", None)),
        ("Other", ("Other", None)),
        ("Windows Phone", ("Other", "Windows Phone")),
        ("Tizen", ("Other", "Tizen")),
        ("HarmonyOS", ("Other", "HarmonyOS")),
        ("FreeBSD", ("Other", "FreeBSD")),
        (None, (None, None)),
        ("", (None, None)),
    ],
)
def test_normalise_os_name(given: str | None, expected: tuple[str | None, str | None]) -> None:
    assert normalise_os_name(given) == expected


@pytest.mark.parametrize("name", BROWSER_NAMES)
def test_canonical_browser_names_are_fixed_points(name: str) -> None:
    assert normalise_browser_name(name) == (name, None)


@pytest.mark.parametrize("name", OS_NAMES)
def test_canonical_os_names_are_fixed_points(name: str) -> None:
    assert normalise_os_name(name) == (name, None)
