"""The enrichment stage: user agent, IP location, IP privacy policy, campaign, bots.

Pure code (no Beam): per-value functions and `Enricher`, which enriches whole
Arrow tables of events on their distinct values.
"""

from eventpipe.transforms.enrich.campaign import campaign_from_page
from eventpipe.transforms.enrich.geoip import GeoLocator, Location, default_database_path
from eventpipe.transforms.enrich.ip_policy import IP_POLICIES, check_ip_policy, mask_ip
from eventpipe.transforms.enrich.names import normalise_browser_name, normalise_os_name
from eventpipe.transforms.enrich.table import Enricher, EnrichOptions, EnrichResult, EnrichStats
from eventpipe.transforms.enrich.user_agent import UserAgentInfo, parse_user_agent

__all__ = [
    "IP_POLICIES",
    "EnrichOptions",
    "EnrichResult",
    "EnrichStats",
    "Enricher",
    "GeoLocator",
    "Location",
    "UserAgentInfo",
    "campaign_from_page",
    "check_ip_policy",
    "default_database_path",
    "mask_ip",
    "normalise_browser_name",
    "normalise_os_name",
    "parse_user_agent",
]
