"""The table-level enrichment: derived values, explicit values win, nulls, schema, bots."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from eventpipe.schemas.event_schema import arrow_schema
from eventpipe.transforms.enrich import Enricher, EnrichOptions, EnrichResult

from pipeline_support import Stages
from pipeline_support import make_event as raw_event

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
)
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:109.0) Gecko/20100101 Firefox/119.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

Make = Callable[..., Any]


@pytest.fixture
def enrich(city_db: Path, make_table: Make) -> Callable[..., EnrichResult]:
    """Enrich event rows with the tiny City database; keyword arguments are options."""

    def run(*events: dict[str, Any], **options: Any) -> EnrichResult:
        enricher = Enricher(EnrichOptions(geoip_db=str(city_db), **options))
        enricher.setup()
        try:
            result = enricher.enrich(make_table(*events))
        finally:
            enricher.teardown()
        assert result.events.schema.equals(arrow_schema())
        assert result.bots.schema.equals(arrow_schema())
        return result

    return run


def contexts(result: EnrichResult) -> list[dict[str, Any] | None]:
    return result.events.column("context").to_pylist()


def test_user_agent_fills_browser_os_and_device(enrich: Make, make_event: Make) -> None:
    (context,) = contexts(enrich(make_event(context={"userAgent": CHROME_WINDOWS})))
    assert context["browser"] == {"name": "Chrome", "other": None, "version": "120.0.6099"}
    assert context["os"] == {"name": "Windows", "other": None, "version": "10"}
    assert context["device"]["type"] == "desktop"
    assert {k: v for k, v in context["device"].items() if k != "type"} == dict.fromkeys(
        ["id", "advertisingId", "adTrackingEnabled", "manufacturer", "model", "name", "token"]
    )


def test_given_browser_and_os_win_and_are_normalised(enrich: Make, make_event: Make) -> None:
    event = make_event(
        context={
            "userAgent": FIREFOX_MAC,
            "browser": {"name": "google chrome", "version": "99.1"},
            "os": {"name": "Mac OS X", "version": "14.1"},
        }
    )
    (context,) = contexts(enrich(event))
    assert context["browser"] == {"name": "Chrome", "other": None, "version": "99.1"}
    assert context["os"] == {"name": "macOS", "other": None, "version": "14.1"}
    assert context["device"]["type"] == "desktop"  # absent, so still derived


def test_unknown_given_names_become_other(enrich: Make, make_event: Make) -> None:
    event = make_event(
        context={
            "userAgent": CHROME_WINDOWS,
            "browser": {"name": "Brave", "version": "1.60"},
            "os": {"name": "HarmonyOS"},
        }
    )
    (context,) = contexts(enrich(event))
    assert context["browser"] == {"name": "Other", "other": "Brave", "version": "1.60"}
    assert context["os"] == {"name": "Other", "other": "HarmonyOS", "version": None}


def test_a_given_version_without_a_name_is_kept(enrich: Make, make_event: Make) -> None:
    event = make_event(context={"userAgent": CHROME_WINDOWS, "browser": {"version": "7"}})
    (context,) = contexts(enrich(event))
    assert context["browser"] == {"name": "Chrome", "other": None, "version": "7"}


def test_blank_given_names_are_no_names(enrich: Make, make_event: Make) -> None:
    event = make_event(
        context={
            "userAgent": CHROME_WINDOWS,
            "browser": {"name": ""},
            "os": {"name": "  "},
            "device": {"type": ""},
        }
    )
    (context,) = contexts(enrich(event))
    assert context["browser"] == {"name": "Chrome", "other": None, "version": "120.0.6099"}
    assert context["os"] == {"name": "Windows", "other": None, "version": "10"}
    assert context["device"]["type"] == "desktop"


def test_given_device_fields_are_kept(enrich: Make, make_event: Make) -> None:
    events = [
        make_event(context={"userAgent": SAFARI_IPHONE, "device": {"manufacturer": "Apple"}}),
        make_event(context={"userAgent": SAFARI_IPHONE, "device": {"type": "smartwatch"}}),
    ]
    first, second = contexts(enrich(*events))
    assert (first["device"]["manufacturer"], first["device"]["type"]) == ("Apple", "mobile")
    assert second["device"]["type"] == "smartwatch"


def test_nulls_stay_null_where_nothing_is_derived(enrich: Make, make_event: Make) -> None:
    events = [
        make_event(context=None),
        make_event(context={"locale": "en-US"}),
        make_event(
            context={"userAgent": "", "ip": "10.0.0.1", "page": {"url": "https://x.example/"}}
        ),
    ]
    no_context, bare, underivable = contexts(enrich(*events))
    assert no_context is None
    for context in (bare, underivable):
        for name in ("browser", "os", "device", "location", "campaign"):
            assert context[name] is None, name
    assert bare["locale"] == "en-US"
    assert underivable["ip"] == "10.0.0.1"


def test_other_fields_keep_their_values_and_types(enrich: Make, make_event: Make) -> None:
    event = make_event(
        userId="u1",
        properties='{"a": 1}',
        context={
            "userAgent": CHROME_WINDOWS,
            "screen": {"width": 1920, "height": 1080, "density": Decimal("2.50")},
            "session": {"id": 1_700_000_000_000, "start": True},
            "app": {"name": "shop", "version": "1.2"},
            "network": {"wifi": True},
        },
    )
    result = enrich(event)
    (row,) = result.events.to_pylist()
    assert row["userId"] == "u1"
    assert row["properties"] == '{"a": 1}'
    context = row["context"]
    assert context["screen"] == {"width": 1920, "height": 1080, "density": Decimal("2.50")}
    assert context["session"] == {"id": 1_700_000_000_000, "start": True}
    assert context["app"]["name"] == "shop"
    assert context["network"]["wifi"] is True


def test_ip_fills_location(enrich: Make, make_event: Make) -> None:
    events = [
        make_event(context={"ip": "81.2.69.160"}),
        make_event(context={"ip": "2a02:ff0::1"}),
        make_event(context={"ip": "89.160.20.1"}),
        make_event(context={"ip": "192.168.1.1"}),
        make_event(context={"ip": "1.1.1.1"}),
    ]
    london, berlin, sweden, private, unknown = contexts(enrich(*events))
    assert london["location"] == {
        "city": "London",
        "country": "GB",
        "latitude": 51.5142,
        "longitude": -0.0931,
        "speed": None,
    }
    assert berlin["location"] == {
        "city": "Berlin",
        "country": "DE",
        "latitude": 52.5244,
        "longitude": 13.4105,
        "speed": None,
    }
    assert sweden["location"] == {
        "city": None,
        "country": "SE",
        "latitude": None,
        "longitude": None,
        "speed": None,
    }
    assert private["location"] is None
    assert unknown["location"] is None


def test_an_ipv4_mapped_client_is_geolocated_and_masked_as_ipv4(enrich: Make) -> None:
    """Issue 11.2, from the raw event on: the stages store ::ffff:81.2.69.160 as IPv4."""
    out = Stages().run(raw_event(context={"ip": "::ffff:81.2.69.160"}))
    assert out.failed == []
    (kept,) = contexts(enrich(*out.events))
    assert (kept["ip"], kept["location"]["city"]) == ("81.2.69.160", "London")
    (masked,) = contexts(enrich(*out.events, ip_policy="mask"))
    assert (masked["ip"], masked["location"]["city"]) == ("81.2.69.0", "London")


def test_given_location_wins(enrich: Make, make_event: Make) -> None:
    events = [
        make_event(context={"ip": "81.2.69.160", "location": {"city": "Paris"}}),
        make_event(context={"ip": "81.2.69.160", "location": {"latitude": 0.0, "longitude": 0.0}}),
        make_event(context={"ip": "81.2.69.160", "location": {"speed": 3.5}}),
    ]
    paris, zero, moving = contexts(enrich(*events))
    assert paris["location"] == {
        "city": "Paris",
        "country": None,
        "latitude": None,
        "longitude": None,
        "speed": None,
    }
    assert zero["location"]["latitude"] == 0.0
    assert zero["location"]["city"] is None
    # A location carrying only a speed has no place: the place is derived, the speed kept.
    assert moving["location"] == {
        "city": "London",
        "country": "GB",
        "latitude": 51.5142,
        "longitude": -0.0931,
        "speed": 3.5,
    }


@pytest.mark.parametrize(
    ("policy", "stored"),
    [
        ("keep", ["81.2.69.160", "2a02:ff0:1:2:3:4:5:6"]),
        ("mask", ["81.2.69.0", "2a02:ff0:1::"]),
        ("drop", [None, None]),
    ],
)
def test_ip_policy_applies_after_geolocation(
    enrich: Make, make_event: Make, policy: str, stored: list[str | None]
) -> None:
    events = [
        make_event(context={"ip": "81.2.69.160"}),
        make_event(context={"ip": "2a02:ff0:1:2:3:4:5:6"}),
    ]
    london, berlin = contexts(enrich(*events, ip_policy=policy))
    assert [london["ip"], berlin["ip"]] == stored
    assert london["location"]["city"] == "London"
    assert berlin["location"]["city"] == "Berlin"


def test_ip_policy_applies_to_every_row(enrich: Make, make_event: Make) -> None:
    events = [
        make_event(context={"ip": "81.2.69.160", "location": {"city": "Paris"}}),
        make_event(context={"ip": "10.1.2.3"}),
        make_event(context={"ip": "not-an-ip"}),
    ]
    given, private, invalid = contexts(enrich(*events, ip_policy="mask"))
    assert (given["ip"], given["location"]["city"]) == ("81.2.69.0", "Paris")
    assert (private["ip"], private["location"]) == ("10.1.2.0", None)
    assert invalid["ip"] is None


def test_campaign_from_page(enrich: Make, make_event: Make) -> None:
    events = [
        make_event(context={"page": {"search": "?utm_campaign=Black%20Friday&utm_source=news"}}),
        make_event(context={"page": {"url": "https://x.example/p?utm_medium=email&utm_term=a+b"}}),
        make_event(
            context={
                "page": {
                    "search": "?utm_source=search",
                    "url": "https://x.example/?utm_source=url",
                }
            }
        ),
        make_event(
            context={
                "campaign": {"name": "given"},
                "page": {"search": "?utm_source=search&utm_medium=cpc"},
            }
        ),
        make_event(context={"page": {"url": "https://x.example/p?q=1"}}),
    ]
    from_search, from_url, both, given, without = contexts(enrich(*events))
    assert from_search["campaign"] == {
        "name": "Black Friday",
        "source": "news",
        "medium": None,
        "term": None,
        "content": None,
    }
    assert from_url["campaign"] == {
        "name": None,
        "source": None,
        "medium": "email",
        "term": "a b",
        "content": None,
    }
    assert both["campaign"]["source"] == "search"
    assert given["campaign"] == {
        "name": "given",
        "source": None,
        "medium": None,
        "term": None,
        "content": None,
    }
    assert without["campaign"] is None


def test_bots_are_marked_and_kept_by_default(enrich: Make, make_event: Make) -> None:
    events = [
        make_event(messageId="human", context={"userAgent": CHROME_WINDOWS}),
        make_event(messageId="bot", context={"userAgent": GOOGLEBOT}),
    ]
    result = enrich(*events)
    assert result.events.num_rows == 2
    assert result.bots.num_rows == 0
    human, bot = contexts(result)
    assert bot["device"]["type"] == "bot"
    assert bot["browser"] == {"name": "Other", "other": "Googlebot", "version": "2.1"}
    assert human["device"]["type"] == "desktop"
    assert result.stats.bots == 1


def test_drop_bots_moves_them_aside(enrich: Make, make_event: Make) -> None:
    events = [
        make_event(messageId="human", context={"userAgent": CHROME_WINDOWS}),
        make_event(messageId="crawler", context={"userAgent": GOOGLEBOT}),
        make_event(messageId="script", context={"userAgent": "python-requests/2.31.0"}),
        make_event(messageId="declared", context={"device": {"type": "bot"}}),
        make_event(
            messageId="declared-human",
            context={"userAgent": "curl/8.4.0", "device": {"type": "desktop"}},
        ),
    ]
    result = enrich(*events, drop_bots=True)
    assert result.events.column("messageId").to_pylist() == ["human", "declared-human"]
    assert result.bots.column("messageId").to_pylist() == ["crawler", "script", "declared"]
    assert {c["device"]["type"] for c in result.bots.column("context").to_pylist()} == {"bot"}


def test_empty_table(enrich: Make) -> None:
    result = enrich()
    assert result.events.num_rows == 0
    assert result.bots.num_rows == 0


def test_many_chunks_and_repeated_values(city_db: Path, make_table: Make, make_event: Make) -> None:
    agents = [CHROME_WINDOWS, SAFARI_IPHONE, FIREFOX_MAC]
    ips = ["81.2.69.160", "2a02:ff0::1", "175.16.199.1", None]
    chunks = [
        make_table(
            *(
                make_event(
                    messageId=f"m{c}-{i}", context={"userAgent": agents[i % 3], "ip": ips[i % 4]}
                )
                for i in range(50)
            )
        )
        for c in range(3)
    ]
    table = pa.concat_tables(chunks)
    assert table.column("context").num_chunks == 3
    enricher = Enricher(EnrichOptions(geoip_db=str(city_db)))
    result = enricher.enrich(table)
    assert result.events.schema.equals(arrow_schema())
    assert result.events.num_rows == 150
    assert result.stats.new_user_agents == 3
    assert result.stats.new_ips == 3
    names = [c["browser"]["name"] for c in result.events.column("context").to_pylist()]
    assert names[:3] == ["Chrome", "Safari", "Firefox"]
    cities = [c["location"] for c in result.events.column("context").to_pylist()][:4]
    assert [c and c["city"] for c in cities] == ["London", "Berlin", "Changchun", None]


def test_input_with_reordered_columns_is_conformed(
    city_db: Path, make_table: Make, make_event: Make
) -> None:
    table = make_table(make_event(context={"userAgent": CHROME_WINDOWS}))
    shuffled = table.select(list(reversed(table.column_names)))
    result = Enricher(EnrichOptions(geoip_db=str(city_db))).enrich(shuffled)
    assert result.events.schema.equals(arrow_schema())


def test_enricher_pickles_before_and_after_setup(
    city_db: Path, make_table: Make, make_event: Make
) -> None:
    assert pickle.loads(pickle.dumps(Enricher(EnrichOptions()))).options == EnrichOptions()
    enricher = Enricher(EnrichOptions(geoip_db=str(city_db), ip_policy="mask"))
    enricher.setup()
    clone = pickle.loads(pickle.dumps(enricher))
    enricher.teardown()
    assert clone.options == enricher.options
    clone.setup()
    (context,) = (
        clone.enrich(make_table(make_event(context={"ip": "81.2.69.160"})))
        .events.column("context")
        .to_pylist()
    )
    assert (context["ip"], context["location"]["country"]) == ("81.2.69.0", "GB")
    clone.teardown()


def test_default_database_is_used_without_a_path(make_table: Make, make_event: Make) -> None:
    enricher = Enricher(EnrichOptions())
    enricher.setup()
    result = enricher.enrich(make_table(make_event(context={"ip": "8.8.8.8"})))
    enricher.teardown()
    (context,) = result.events.column("context").to_pylist()
    assert context["location"]["country"] == "US"


@pytest.mark.parametrize("policy", ["", "hash", "MASK"])
def test_invalid_options_are_rejected_early(policy: str) -> None:
    with pytest.raises(ValueError, match="ip policy"):
        Enricher(EnrichOptions(ip_policy=policy))
