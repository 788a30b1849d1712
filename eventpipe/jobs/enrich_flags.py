"""The enrichment flags (no Beam import: `serve` uses them too, for its listeners)."""

from __future__ import annotations

import argparse

from eventpipe.transforms.enrich import IP_POLICIES, EnrichOptions


def add_enrich_arguments(parser: argparse.ArgumentParser) -> None:
    """The enrichment flags of import, reprocess and stream (and of serve: what event
    listeners show)."""
    enrich = parser.add_argument_group("enrichment")
    enrich.add_argument(
        "--geoip-db",
        default=None,
        help="MaxMind City database (GeoLite2-City or GeoIP2-City .mmdb; any Beam path) for "
        "context.location; default: the GeoLite2 City database bundled with the package",
    )
    enrich.add_argument(
        "--ip-policy",
        choices=IP_POLICIES,
        default="keep",
        help="what is stored of context.ip after geolocation: keep it, mask it (IPv4 last octet, "
        "IPv6 last 80 bits) or drop it (default: keep)",
    )
    enrich.add_argument(
        "--drop-bots",
        action="store_true",
        help="do not write events from bots and crawlers to the event table; they go to the "
        "failed table with reason 'bot' (without this flag they are kept, with "
        "context.device.type = 'bot')",
    )
    enrich.add_argument(
        "--no-enrich",
        action="store_true",
        help="skip enrichment: store events as validated and normalised (browser, OS, "
        "location and campaign only when the events carry them)",
    )


def enrich_options(args: argparse.Namespace) -> EnrichOptions | None:
    """The enrichment options the flags ask for (None: --no-enrich)."""
    if args.no_enrich:
        return None
    return EnrichOptions(
        geoip_db=args.geoip_db, ip_policy=args.ip_policy, drop_bots=args.drop_bots
    ).check()
