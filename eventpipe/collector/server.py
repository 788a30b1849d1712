"""Building a collector from its settings: the landing sink, the catalog, the app.

`collector_app` is a collector-only Starlette app; `app_from_env` builds one from
`EVENTPIPE_COLLECTOR` (JSON of `CollectorConfig`), for `uvicorn --factory --workers N`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from starlette.applications import Starlette

from eventpipe.api.auth import Authenticator
from eventpipe.catalog import Catalog
from eventpipe.collector.app import Collector, CollectorSettings, install_collector, parse_networks
from eventpipe.collector.batcher import LandingSink
from eventpipe.collector.requests import Limits
from eventpipe.io.landing import (
    DEFAULT_SEGMENT_BYTES,
    DEFAULT_SEGMENT_SECONDS,
    SegmentWriter,
    landing_folder,
)
from eventpipe.listeners.store import store_beside
from eventpipe.listeners.tap import ListenerTap
from eventpipe.transforms.enrich import EnrichOptions

CONFIG_ENV = "EVENTPIPE_COLLECTOR"


@dataclass(frozen=True)
class CollectorConfig:
    """Everything a collector process needs (the `serve` flags)."""

    lake: str
    landing: str = "file"  # or "pubsub"
    topic: str | None = None
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    max_body_bytes: int = Limits.max_body_bytes
    max_events: int = Limits.max_events
    max_depth: int = Limits.max_depth
    max_pending_bytes: int = Limits.max_pending_bytes
    trusted_proxies: list[str] = field(default_factory=list)
    # what event listeners show (docs/listeners.md): the import's enrichment flags
    listener_geoip_db: str | None = None
    listener_ip_policy: str = "keep"
    listener_drop_bots: bool = False
    listener_no_enrich: bool = False

    def check(self) -> CollectorConfig:
        """ValueError naming what is wrong."""
        if self.landing not in ("file", "pubsub"):
            raise ValueError(f"--landing must be file or pubsub, not {self.landing!r}")
        if self.landing == "pubsub" and not self.topic:
            raise ValueError("--landing pubsub needs --topic projects/P/topics/T")
        if self.landing == "file" and "://" in self.lake:
            raise ValueError("the file landing log needs a local --lake (or --landing pubsub)")
        if not self.segment_seconds > 0 or self.segment_bytes < 1:
            raise ValueError("--landing-segment-seconds and --landing-segment-bytes must be > 0")
        for name in ("max_body_bytes", "max_events", "max_depth", "max_pending_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        parse_networks(self.trusted_proxies)
        self.listener_enrich()
        return self

    def listener_enrich(self) -> EnrichOptions | None:
        """The enrichment the listeners' stage chain runs (None: none; ValueError naming a
        bad flag)."""
        if self.listener_no_enrich:
            return None
        return EnrichOptions(
            self.listener_geoip_db, self.listener_ip_policy, self.listener_drop_bots
        ).check()


def landing_sink(config: CollectorConfig) -> LandingSink:
    """The configured landing log."""
    if config.landing == "pubsub":
        from eventpipe.io.landing_pubsub import PubSubLanding

        return PubSubLanding(str(config.topic))
    return SegmentWriter(landing_folder(config.lake), config.segment_seconds, config.segment_bytes)


def build_collector(config: CollectorConfig) -> Collector:
    """A collector over the lake's catalog, landing as configured."""
    limits = Limits(
        config.max_body_bytes, config.max_events, config.max_depth, config.max_pending_bytes
    )
    settings = CollectorSettings(limits, parse_networks(config.trusted_proxies))
    catalog = Catalog.in_lake(config.lake)
    tap = ListenerTap(store_beside(catalog.path), config.listener_enrich())
    return Collector(Authenticator(catalog), landing_sink(config), settings, tap)


def collector_app(config: CollectorConfig) -> Starlette:
    """A collector-only app (serve --role collector, the benchmark's workers)."""
    app = Starlette()
    install_collector(app, build_collector(config))
    return app


def config_to_env(config: CollectorConfig) -> dict[str, str]:
    """The environment variable `app_from_env` reads."""
    return {CONFIG_ENV: json.dumps(asdict(config))}


def app_from_env() -> Starlette:
    """uvicorn factory: `uvicorn --factory eventpipe.collector.server:app_from_env`."""
    return collector_app(CollectorConfig(**json.loads(os.environ[CONFIG_ENV])).check())
