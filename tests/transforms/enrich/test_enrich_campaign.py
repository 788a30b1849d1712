"""Campaign from the UTM parameters of context.page.search or context.page.url."""

from __future__ import annotations

import pytest

from eventpipe.transforms.enrich.campaign import campaign_from_page


def campaign(
    name: str | None = None,
    source: str | None = None,
    medium: str | None = None,
    term: str | None = None,
    content: str | None = None,
) -> dict[str, str | None]:
    return {"name": name, "source": source, "medium": medium, "term": term, "content": content}


@pytest.mark.parametrize(
    ("search", "url", "expected"),
    [
        (
            "?utm_campaign=spring&utm_source=google&utm_medium=cpc&utm_term=shoes&utm_content=ad1",
            None,
            campaign("spring", "google", "cpc", "shoes", "ad1"),
        ),
        ("utm_source=newsletter", None, campaign(source="newsletter")),  # no leading "?"
        (
            "?utm_campaign=Black%20Friday&utm_term=red+shoes",
            None,
            campaign("Black Friday", term="red shoes"),
        ),
        ("?utm_content=caf%C3%A9", None, campaign(content="café")),
        ("?UTM_Source=Google", None, campaign(source="Google")),
        ("?utm_source=a&utm_source=b", None, campaign(source="a")),  # first value wins
        ("?utm_source=&utm_medium=email", None, campaign(medium="email")),  # empty ignored
        ("?q=shoes&page=2", None, None),
        ("?utm_source=", None, None),
        ("", None, None),
        (None, None, None),
        (
            None,
            "https://shop.example/p?utm_source=fb&utm_medium=social",
            campaign(source="fb", medium="social"),
        ),
        (None, "https://shop.example/p?utm_campaign=x%2By#utm_source=ignored", campaign("x+y")),
        (None, "https://shop.example/p", None),
        (None, "https://shop.example/p?ref=utm_source", None),
        (None, "not a url", None),
        (None, "http://[::1/p?utm_source=x", None),  # invalid URL: no campaign, no error
        # The search string wins over the URL...
        ("?utm_source=search", "https://x.example/?utm_source=url", campaign(source="search")),
        # ...unless it carries no UTM parameter.
        ("?q=1", "https://x.example/?utm_medium=url", campaign(medium="url")),
    ],
)
def test_campaign_from_page(
    search: str | None, url: str | None, expected: dict[str, str | None] | None
) -> None:
    assert campaign_from_page(search, url) == expected


def test_results_are_independent_copies() -> None:
    first = campaign_from_page("?utm_source=a", None)
    assert first is not None
    first["source"] = "changed"
    assert campaign_from_page("?utm_source=a", None) == campaign(source="a")
