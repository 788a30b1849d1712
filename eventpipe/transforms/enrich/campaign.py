"""Campaign (UTM parameters) from the page's query string."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

CAMPAIGN_FIELDS = ("name", "source", "medium", "term", "content")
UTM_PARAMETERS = {
    "utm_campaign": "name",
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_term": "term",
    "utm_content": "content",
}

CampaignValues = tuple[str | None, str | None, str | None, str | None, str | None]


@lru_cache(maxsize=16_384)
def utm_values(query: str) -> CampaignValues | None:
    """(name, source, medium, term, content) from a query string ("?" optional).

    URL-decoded; the first non-empty value of each parameter wins; None when
    no utm_* parameter has a value.
    """
    campaign: dict[str, str | None] = dict.fromkeys(CAMPAIGN_FIELDS)
    found = False
    for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=False):
        name = UTM_PARAMETERS.get(key.strip().lower())
        value = value.strip()
        if name is not None and value and campaign[name] is None:
            campaign[name] = value
            found = True
    if not found:
        return None
    return (
        campaign["name"],
        campaign["source"],
        campaign["medium"],
        campaign["term"],
        campaign["content"],
    )


@lru_cache(maxsize=16_384)
def utm_values_from_url(url: str) -> CampaignValues | None:
    """`utm_values` of the query of a page URL."""
    try:
        query = urlsplit(url).query
    except ValueError:  # e.g. an invalid IPv6 host
        return None
    return utm_values(query) if query else None


def campaign_from_page(search: str | None, url: str | None) -> dict[str, str | None] | None:
    """Campaign from `context.page.search`, else from the query of `context.page.url`.

    Returns {name, source, medium, term, content} (missing ones None), or None
    when neither carries a non-empty utm_* parameter.
    """
    values = utm_values(search) if search else None
    if values is None and url:
        values = utm_values_from_url(url)
    return None if values is None else dict(zip(CAMPAIGN_FIELDS, values, strict=True))
