"""Benchmark of the enrichment stage (`Enricher.enrich`) on synthetic event tables.

Prints events/s for the whole table and in pipeline-sized batches, cold
(empty caches) and warm, plus the raw UA parse and IP lookup rates and the
cache hit rates. A script, not a test:

    .venv/bin/python benchmarks/bench_enrich.py [--rows 200000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow as pa
from measured import require
from ua_parser import Domain

from eventpipe.schemas.event_schema import arrow_schema
from eventpipe.transforms.enrich import Enricher, EnrichOptions, GeoLocator
from eventpipe.transforms.enrich import campaign as campaign_module
from eventpipe.transforms.enrich import ip_policy as ip_policy_module
from eventpipe.transforms.enrich import names as names_module
from eventpipe.transforms.enrich.user_agent import load_resolver, parse_user_agent

_DESKTOP = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.{b}.{p} Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_{m}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.{b}.{p} Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.{b}.{p} Safari/537.36 Edg/{v}.0.{b}.{p}",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_{m}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/{m}.{p} Safari/605.1.15",
    "Mozilla/5.0 (X11; CrOS x86_64 {b}.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.{b}.{p} Safari/537.36",
]
_MOBILE = [
    "Mozilla/5.0 (Linux; Android {m}; SM-S9{p}B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.{b}.{p} Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS {m}_{p} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/{m}.{p} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS {m}_{p} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/{v}.0.{b}.{p} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android {m}; SAMSUNG SM-A{p}5F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/{m}.0 Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS {m}_{p} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/{m}.{p} Mobile/15E148 Safari/604.1",
]
_BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.{p}.0",
    "python-requests/2.{p}.0",
]
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def make_user_agents(count: int, rng: random.Random) -> list[str]:
    """`count` distinct, realistic user agent strings."""
    agents: set[str] = set()
    templates = _DESKTOP + _MOBILE
    while len(agents) < count:
        roll = rng.random()
        template = rng.choice(_BOTS) if roll < 0.02 else rng.choice(templates)
        agents.add(
            template.format(
                v=rng.randint(100, 121),
                b=rng.randint(4000, 6200),
                p=rng.randint(0, 99),
                m=rng.randint(9, 17),
            )
        )
    return sorted(agents)


def make_ips(count: int, rng: random.Random) -> list[str]:
    """`count` distinct IPv4 addresses, mostly public, ~2% private, ~3% IPv6."""
    ips: set[str] = set()
    while len(ips) < count:
        roll = rng.random()
        if roll < 0.03:
            ips.add(str(ipaddress.IPv6Address((0x2A00 << 112) | rng.getrandbits(100))))
        elif roll < 0.05:
            net = rng.choice(_PRIVATE)
            ips.add(str(net[rng.randrange(net.num_addresses)]))
        else:
            address = ipaddress.IPv4Address(rng.randint(0x01000000, 0xDFFFFFFF))
            if address.is_global:
                ips.add(str(address))
    return sorted(ips)


def make_table(rows: int, user_agents: int, ips: int, seed: int = 7) -> pa.Table:
    """A table of `rows` page events with the lake schema (built column-wise)."""
    rng = random.Random(seed)
    agents = make_user_agents(user_agents, rng)
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(agents))]  # heavy head, long tail
    addresses = make_ips(ips, rng)
    ua_column = rng.choices(agents, weights=weights, k=rows)
    ip_column = [rng.choice(addresses) for _ in range(rows)]
    urls = [
        f"https://shop.example/p/{i % 500}"
        + (f"?utm_source=s{i % 7}&utm_campaign=c{i % 40}" if i % 5 == 0 else "")
        for i in range(rows)
    ]
    schema = arrow_schema()
    context_type = schema.field("context").type
    page_type = context_type.field("page").type
    page = pa.StructArray.from_arrays(
        [pa.array(urls) if f.name == "url" else pa.nulls(rows, f.type) for f in page_type],
        fields=list(page_type),
    )
    given = {"userAgent": pa.array(ua_column), "ip": pa.array(ip_column), "page": page}
    context = pa.StructArray.from_arrays(
        [given.get(f.name, pa.nulls(rows, f.type)) for f in context_type],
        fields=list(context_type),
    )
    when = pa.array([datetime(2026, 11, 25, tzinfo=UTC)] * rows, schema.field("timestamp").type)
    columns = {
        "connectionId": pa.array([1] * rows, pa.int32()),
        "anonymousId": pa.array([f"a{i % 50_000}" for i in range(rows)]),
        "messageId": pa.array([f"m{i}" for i in range(rows)]),
        "type": pa.array(["page"] * rows),
        "traits": pa.array(["{}"] * rows),
        "receivedAt": when,
        "sentAt": when,
        "originalTimestamp": when,
        "timestamp": when,
        "context": context,
    }
    return pa.table([columns.get(f.name, pa.nulls(rows, f.type)) for f in schema], schema=schema)


def clear_caches() -> None:
    """Empty every process-wide cache of the enrichment."""
    parse_user_agent.cache_clear()
    names_module.normalise_browser_name.cache_clear()
    names_module.normalise_os_name.cache_clear()
    campaign_module.utm_values.cache_clear()
    ip_policy_module.masked_ip.cache_clear()
    campaign_module.utm_values_from_url.cache_clear()


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_batches(enricher: Enricher, batches: list[pa.Table]) -> None:
    for batch in batches:
        enricher.enrich(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--user-agents", type=int, default=2_000)
    parser.add_argument("--ips", type=int, default=45_000)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per batch")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--geoip-db", default=None)
    parser.add_argument("--ip-policy", default="mask")
    args = parser.parse_args()

    require(args.rows > 0 and args.repeat > 0, "--rows and --repeat must be positive")
    started = time.perf_counter()
    table = make_table(args.rows, args.user_agents, args.ips)
    batches = table.to_batches(max_chunksize=args.batch)
    batch_tables = [pa.Table.from_batches([b], schema=table.schema) for b in batches]
    print(
        f"data: {table.num_rows:,} rows, {len(batch_tables)} batches of <= {args.batch:,}, "
        f"{args.user_agents:,} distinct UAs, {args.ips:,} distinct IPs "
        f"(built in {time.perf_counter() - started:.1f}s)"
    )
    gc.freeze()

    options = EnrichOptions(geoip_db=args.geoip_db, ip_policy=args.ip_policy)
    load_resolver()

    # Raw rates, no caches: ua-parser resolver and maxminddb lookups on distinct values.
    distinct_uas = table.column("context").combine_chunks().field("userAgent").unique().to_pylist()
    resolver = load_resolver()
    seconds = timed(lambda: [resolver(ua, Domain.ALL) for ua in distinct_uas], 1)
    print(
        f"UA parse, uncached ({type(resolver).__module__}): "
        f"{len(distinct_uas) / seconds:,.0f} parses/s"
    )
    clear_caches()
    seconds = timed(lambda: [parse_user_agent(ua) for ua in distinct_uas], 1)
    print(f"UA parse + normalise, cold cache: {len(distinct_uas) / seconds:,.0f} parses/s")
    distinct_ips = table.column("context").combine_chunks().field("ip").unique().to_pylist()
    geo = GeoLocator(args.geoip_db, cache_size=0)
    seconds = timed(lambda: [geo.locate(ip) for ip in distinct_ips], 1)
    print(f"IP lookup, uncached ({geo.describe()}): {len(distinct_ips) / seconds:,.0f} lookups/s")
    geo.close()

    def cold(run: Callable[[Enricher], object]) -> Callable[[], object]:
        def go() -> object:
            clear_caches()
            enricher = Enricher(options)
            enricher.setup()
            try:
                return run(enricher)
            finally:
                enricher.teardown()

        return go

    rows = table.num_rows
    for label, run in [
        ("whole table", lambda e: e.enrich(table)),
        (f"batches of {args.batch:,}", lambda e: run_batches(e, batch_tables)),
    ]:
        seconds = timed(cold(run), args.repeat)
        print(f"enrich {label}, cold caches: {rows / seconds:,.0f} events/s ({seconds:.2f}s)")
        clear_caches()
        enricher = Enricher(options)
        enricher.setup()
        run(enricher)  # warm up
        seconds = timed(lambda e=enricher, r=run: r(e), args.repeat)
        print(f"enrich {label}, warm caches: {rows / seconds:,.0f} events/s ({seconds:.2f}s)")
        for name, (hits, misses) in enricher.cache_stats().items():
            print(
                f"  {name} memo: {hits / max(1, hits + misses):.1%} hits "
                f"(distinct values per batch; {misses:,} misses)"
            )
        enricher.teardown()

    clear_caches()
    enricher = Enricher(options)
    enricher.setup()
    stats = enricher.enrich(table).stats
    require(stats.locations_derived > 0, f"no location derived ({stats})")
    print(f"per call: {stats}")


if __name__ == "__main__":
    main()
