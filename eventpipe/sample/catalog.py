"""What the synthetic customers do: sources, sites, pages, track events, traits.

Everything here is static data or a small function of a `random.Random`, so the
generator stays deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Props = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Source:
    """A source connection: its id, write key, kind of client and the site or app it tracks."""

    connection_id: int
    write_key: str
    kind: str  # web | ios | android | server
    library: dict[str, str]
    site: str  # key of SITES / APP_EVENTS


SOURCES = (
    Source(1371036433, "wk_7Qm2Ht9vLx4RbN8eZc1UaK3sFp0Gd6Yw", "web",
           {"name": "krenalis.js", "version": "1.4.2"}, "shop"),
    Source(1371036501, "wk_Jd5Vn0Xq8Lc2Tw7Ra4Ke9Hm1Zb6Ps3Uy", "web",
           {"name": "analytics.js", "version": "2.1.1"}, "saas"),
    Source(1402217785, "wk_Ua8Gm3Qs1Xz6Nv0Lh5Tc2Wk9Rb4Ye7Pf", "ios",
           {"name": "krenalis-ios", "version": "1.2.0"}, "fitness"),
    Source(1402217786, "wk_Hc4Tz9Pa2Ml7Wq0Vx5Ns8Gd1Ek6Rb3Jy", "android",
           {"name": "krenalis-android", "version": "1.1.3"}, "fitness"),
    Source(1188324001, "wk_Bn6Rk1Wv8Sy3Ja0Qd5Ft2Lm9Xc4Zh7Ug", "server",
           {"name": "krenalis-python", "version": "0.9.1"}, "shop"),
    Source(1188324002, "wk_Pe2Yw7Kc0Nt5Hg9Ra3Lz6Vq1Mu8Sd4Fx", "server",
           {"name": "analytics-node", "version": "2.2.0"}, "saas"),
)  # fmt: skip

SITES: dict[str, tuple[str, tuple[tuple[str, str, str, str], ...]]] = {
    # origin, pages: (path, title, category, name)
    "shop": ("https://www.northwind-outfitters.com", (
        ("/", "Northwind Outfitters - Outdoor Gear", "Home", "Home"),
        ("/c/jackets", "Jackets | Northwind Outfitters", "Category", "Jackets"),
        ("/c/running-shoes", "Running Shoes | Northwind Outfitters", "Category", "Running Shoes"),
        ("/c/tents", "Tents & Shelters | Northwind Outfitters", "Category", "Tents"),
        ("/p/alpine-shell-jacket-2026", "Alpine Shell Jacket", "Product", "Alpine Shell Jacket"),
        ("/p/trail-runner-gtx", "Trail Runner GTX", "Product", "Trail Runner GTX"),
        ("/p/ridge-2p-tent", "Ridge 2P Tent", "Product", "Ridge 2P Tent"),
        ("/p/merino-base-layer", "Merino Base Layer", "Product", "Merino Base Layer"),
        ("/search", "Search results", "Search", "Search"),
        ("/cart", "Your cart", "Checkout", "Cart"),
        ("/checkout/shipping", "Checkout - Shipping", "Checkout", "Shipping"),
        ("/checkout/payment", "Checkout - Payment", "Checkout", "Payment"),
        ("/checkout/confirmation", "Thank you for your order", "Checkout", "Confirmation"),
        ("/account/orders", "My orders", "Account", "Orders"),
        ("/blog/how-to-layer-for-winter", "How to layer for winter", "Blog", "Layering Guide"),
    )),
    "saas": ("https://app.lumenboard.io", (
        ("/", "Lumenboard - dashboards for teams", "Marketing", "Home"),
        ("/pricing", "Pricing - Lumenboard", "Marketing", "Pricing"),
        ("/signup", "Create your account - Lumenboard", "Auth", "Sign Up"),
        ("/login", "Log in - Lumenboard", "Auth", "Login"),
        ("/dashboards", "Dashboards", "App", "Dashboards"),
        ("/dashboards/q3-revenue", "Q3 Revenue", "App", "Dashboard"),
        ("/reports/new", "New report", "App", "New Report"),
        ("/settings/team", "Team settings", "Settings", "Team"),
        ("/settings/billing", "Billing", "Settings", "Billing"),
        ("/docs/getting-started", "Getting started - Docs", "Docs", "Getting Started"),
    )),
}  # fmt: skip

SCREENS = ("Home", "Workout List", "Workout Detail", "Active Workout", "Workout Summary",
           "Profile", "Settings", "Plans", "Paywall", "Onboarding Step 1", "Onboarding Step 2",
           "Leaderboard", "Notifications")  # fmt: skip

REFERRERS = ("https://www.google.com/", "https://www.google.de/", "https://www.bing.com/",
             "https://duckduckgo.com/", "https://www.facebook.com/", "https://l.instagram.com/",
             "https://t.co/", "https://www.reddit.com/", "https://news.ycombinator.com/",
             "android-app://com.google.android.gm/", "https://www.linkedin.com/")  # fmt: skip

UTM = (
    "utm_source=google&utm_medium=cpc&utm_campaign=black_friday_2026&utm_term=rain+jacket",
    "utm_source=newsletter&utm_medium=email&utm_campaign=october_digest&utm_content=hero_cta",
    "utm_source=facebook&utm_medium=paid_social&utm_campaign=autumn_launch&utm_content=carousel_v2",
    "utm_source=instagram&utm_medium=social&utm_campaign=ugc_trailrunning",
    "utm_source=bing&utm_medium=cpc&utm_campaign=brand&utm_term=northwind",
    "utm_source=partner_blog&utm_medium=referral&utm_campaign=affiliates_q4",
    "gclid=Cj0KCQjw3ZayBhDRARIsAPWzx8pQ2Nf&utm_source=google&utm_medium=cpc&utm_campaign=pmax",
)

LOCALES = (("en-US", "America/New_York", 20), ("en-US", "America/Los_Angeles", 10),
           ("en-US", "America/Chicago", 8), ("en-GB", "Europe/London", 9),
           ("de-DE", "Europe/Berlin", 8), ("fr-FR", "Europe/Paris", 6),
           ("it-IT", "Europe/Rome", 5), ("es-ES", "Europe/Madrid", 4),
           ("pt-BR", "America/Sao_Paulo", 4), ("ja-JP", "Asia/Tokyo", 3),
           ("en-IN", "Asia/Kolkata", 4), ("nl-NL", "Europe/Amsterdam", 2),
           ("pl-PL", "Europe/Warsaw", 2), ("es-MX", "America/Mexico_City", 2),
           ("en-AU", "Australia/Sydney", 2), ("ko-KR", "Asia/Seoul", 1),
           ("sv-SE", "Europe/Stockholm", 1), ("en-CA", "America/Toronto", 2),
           ("fr-CA", "America/Toronto", 1), ("tr-TR", "Europe/Istanbul", 1),
           ("zh-CN", "Asia/Shanghai", 1))  # fmt: skip

DESKTOP_SCREENS = ((1920, 1080, 1), (1536, 864, 1.25), (1440, 900, 2), (1366, 768, 1),
                   (2560, 1440, 1), (1280, 720, 1.5), (1680, 1050, 2), (1512, 982, 2),
                   (3840, 2160, 1.5), (1280, 800, 2), (1600, 900, 1))  # fmt: skip
MOBILE_SCREENS = ((390, 844, 3), (393, 852, 3), (430, 932, 3), (375, 667, 2), (412, 915, 2.5),
                  (360, 800, 3), (384, 854, 2.75), (414, 896, 2), (360, 780, 3.5),
                  (820, 1180, 2), (768, 1024, 2), (800, 1280, 1.5))  # fmt: skip

IOS_DEVICES = (("iPhone16,2", "iPhone 15 Pro Max", "18.6"), ("iPhone15,2", "iPhone 14 Pro", "18.5"),
               ("iPhone14,5", "iPhone 13", "17.6.1"), ("iPhone17,1", "iPhone 16 Pro", "26.0"),
               ("iPhone12,1", "iPhone 11", "16.7.10"), ("iPad13,18", "iPad (10th gen)", "18.3"))  # fmt: skip
ANDROID_DEVICES = (("samsung", "SM-S918B", "14"), ("Google", "Pixel 8", "14"),
                   ("samsung", "SM-A536B", "13"), ("Xiaomi", "M2101K6G", "12"),
                   ("OnePlus", "CPH2487", "14"), ("Google", "Pixel 9 Pro", "15"),
                   ("motorola", "moto g54 5G", "14"))  # fmt: skip
CARRIERS = ("T-Mobile", "Verizon", "AT&T", "Vodafone", "Orange", "Telekom.de", "TIM", "O2 - UK",
            "Jio 4G", "Movistar")  # fmt: skip

FIRST_NAMES = ("Emma", "Liam", "Olivia", "Noah", "Ava", "Mateo", "Sofia", "Lukas", "Chloe",
               "Hiroshi", "Priya", "Giulia", "Omar", "Zoe", "Jonas", "Camila", "Ethan", "Mia")  # fmt: skip
LAST_NAMES = ("Smith", "Rossi", "Müller", "García", "Dubois", "Tanaka", "Patel", "Kowalski",
              "Johnson", "Silva", "Nguyen", "O'Brien", "Jensen", "Costa", "Kim", "Brown")  # fmt: skip
COMPANIES = (("Acme Corp", "Manufacturing"), ("Globex", "Energy"), ("Initech", "Software"),
             ("Umbrella Health", "Healthcare"), ("Stark Logistics", "Logistics"),
             ("Wayne Retail", "Retail"), ("Hooli", "Software"), ("Vandelay Imports", "Wholesale"),
             ("Soylent Foods", "Food & Beverage"), ("Tyrell Labs", "Biotech"))  # fmt: skip
PLANS = ("free", "starter", "pro", "business", "enterprise")


def _money(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 2)


def _sku(rng: random.Random) -> str:
    return f"NW-{rng.randint(10000, 99999)}-{rng.choice('SMLX')}"


def _product(rng: random.Random) -> Props:
    return {"product_id": _sku(rng), "price": _money(rng, 9, 480), "quantity": rng.randint(1, 3)}


_SHOP_EVENTS: tuple[tuple[str, int, Callable[[random.Random], Props]], ...] = (
    ("Product Viewed", 30, lambda r: {
        "product_id": _sku(r), "name": r.choice(("Alpine Shell Jacket", "Trail Runner GTX",
                                                 "Ridge 2P Tent", "Merino Base Layer")),
        "price": _money(r, 19, 480), "currency": "USD", "in_stock": r.random() < 0.9,
        "variant": r.choice((None, "Blue / M", "Black / L", "Olive / S")),
        "tags": r.sample(("waterproof", "new", "sale", "bestseller", "eco"), r.randint(0, 3))}),
    ("Product Added", 12, lambda r: {**_product(r), "cart_id": f"cart_{r.getrandbits(40):010x}",
                                     "position": r.randint(1, 24)}),
    ("Product List Filtered", 6, lambda r: {
        "list_id": r.choice(("jackets", "running-shoes", "tents")),
        "filters": [{"type": "size", "value": r.choice("SMLX")},
                    {"type": "price_max", "value": r.choice((100, 200, 300))}],
        "sorts": [{"type": "price", "value": r.choice(("asc", "desc"))}]}),
    ("Search Performed", 8, lambda r: {
        "query": r.choice(("rain jacket", "trail shoes", "2 person tent", "merino", "gloves")),
        "results": r.randint(0, 240), "page": r.randint(1, 3), "typo_corrected": r.random() < 0.1}),
    ("Cart Viewed", 6, lambda r: {"cart_id": f"cart_{r.getrandbits(40):010x}",
                                  "products": [_product(r) for _ in range(r.randint(1, 3))]}),
    ("Checkout Started", 4, lambda r: {"order_id": f"ord_{r.getrandbits(36):09x}",
                                       "value": _money(r, 20, 900), "currency": "USD",
                                       "coupon": r.choice((None, None, "FALL15"))}),
    ("Order Completed", 3, lambda r: {
        "order_id": f"ord_{r.getrandbits(36):09x}", "total": _money(r, 20, 1200),
        "revenue": _money(r, 18, 1000), "shipping": r.choice((0, 4.99, 9.99)),
        "tax": _money(r, 1, 90), "currency": r.choice(("USD", "EUR", "GBP")),
        "coupon": r.choice((None, "FALL15", "WELCOME10")), "first_order": r.random() < 0.3,
        "products": [_product(r) for _ in range(r.randint(1, 4))]}),
    ("Button Clicked", 10, lambda r: {
        "button_id": r.choice(("hero_cta", "add_to_wishlist", "size_guide", "newsletter_submit")),
        "label": r.choice(("Shop now", "Save", "Size guide", "Subscribe")),
        "position": {"x": r.randint(0, 1900), "y": r.randint(0, 4000)}}),
    ("Video Played", 3, lambda r: {"video_id": f"vid_{r.randint(100, 999)}",
                                   "duration_s": round(r.uniform(15, 600), 1),
                                   "autoplay": r.random() < 0.4, "quality": r.choice(("720p", "1080p"))}),
)  # fmt: skip

_SAAS_EVENTS: tuple[tuple[str, int, Callable[[random.Random], Props]], ...] = (
    ("Signed Up", 4, lambda r: {"method": r.choice(("email", "google", "github", "sso")),
                                "plan": r.choice(PLANS[:3]),
                                "referral": {"code": r.choice((None, "FRIEND25")),
                                             "source": r.choice(("ads", "organic", "invite"))}}),
    ("Logged In", 10, lambda r: {"method": r.choice(("password", "google", "sso")),
                                 "mfa": r.random() < 0.35, "remember_me": r.random() < 0.6}),
    ("Dashboard Viewed", 25, lambda r: {"dashboard_id": r.randint(1000, 99999),
                                        "widgets": r.randint(1, 24),
                                        "load_ms": r.randint(80, 4000), "shared": r.random() < 0.2}),
    ("Report Created", 8, lambda r: {"report_id": f"rep_{r.getrandbits(32):08x}",
                                     "chart_types": r.sample(("bar", "line", "pie", "table"), 2),
                                     "rows": r.randint(0, 100000), "filters": None}),
    ("Invite Sent", 4, lambda r: {"invitee_role": r.choice(("viewer", "editor", "admin")),
                                  "seats_left": r.randint(0, 40)}),
    ("Subscription Upgraded", 2, lambda r: {"from_plan": r.choice(PLANS[:3]),
                                            "to_plan": r.choice(PLANS[2:]),
                                            "mrr": _money(r, 29, 2400), "annual": r.random() < 0.4}),
    ("Feature Used", 15, lambda r: {"feature": r.choice(("export_csv", "alerts", "sql_editor",
                                                         "embed", "ai_summary")),
                                    "count": r.randint(1, 20), "beta": r.random() < 0.1,
                                    "meta": {"ui": r.choice(("menu", "shortcut")), "v": 2}}),
    ("Experiment Viewed", 5, lambda r: {"experiment_id": "exp_onboarding_v3",
                                        "variation": r.choice(("control", "a", "b")),
                                        "ratio": 0.33}),
)  # fmt: skip

_APP_EVENTS: tuple[tuple[str, int, Callable[[random.Random], Props]], ...] = (
    ("Application Opened", 20, lambda r: {"from_background": r.random() < 0.6,
                                          "version": r.choice(("4.12.0", "4.11.2", "4.10.0")),
                                          "build": r.choice(("4120", "4112", "4100"))}),
    ("Workout Started", 15, lambda r: {"workout_type": r.choice(("Cardio", "HIIT", "Yoga",
                                                                "Strength", "Run")),
                                       "planned_minutes": r.choice((15, 20, 30, 45, 60))}),
    ("Workout Completed", 12, lambda r: {"workout_type": r.choice(("Cardio", "HIIT", "Yoga",
                                                                  "Strength", "Run")),
                                         "duration_minutes": r.randint(5, 95),
                                         "calories_burned": r.randint(40, 900),
                                         "avg_heart_rate": r.choice((None, r.randint(95, 175))),
                                         "device": r.choice(("Phone", "Smartwatch"))}),
    ("Goal Set", 4, lambda r: {"goal": r.choice(("lose_weight", "build_muscle", "endurance")),
                               "target": {"value": r.randint(2, 20), "unit": "kg"}}),
    ("Notification Opened", 6, lambda r: {"campaign": r.choice(("streak_reminder", "new_plan")),
                                          "delay_s": r.randint(1, 86400)}),
    ("Subscription Started", 2, lambda r: {"plan": r.choice(("monthly", "annual")),
                                           "price": r.choice((9.99, 59.99)),
                                           "trial": r.random() < 0.5}),
    ("Application Installed", 1, lambda r: {"version": "4.12.0", "build": "4120"}),
)  # fmt: skip

_SERVER_EVENTS: tuple[tuple[str, int, Callable[[random.Random], Props]], ...] = (
    ("Order Completed", 10, _SHOP_EVENTS[6][2]),
    ("Order Shipped", 8, lambda r: {"order_id": f"ord_{r.getrandbits(36):09x}",
                                    "carrier": r.choice(("UPS", "DHL", "FedEx")),
                                    "tracking_number": f"1Z{r.getrandbits(48):012X}"}),
    ("Invoice Paid", 6, lambda r: {"invoice_id": f"in_{r.getrandbits(48):012x}",
                                   "amount": _money(r, 29, 9000), "currency": "USD",
                                   "attempt": r.randint(1, 3)}),
    ("Payment Failed", 2, lambda r: {"invoice_id": f"in_{r.getrandbits(48):012x}",
                                     "reason": r.choice(("card_declined", "expired_card")),
                                     "retry_at": None}),
    ("Email Sent", 12, lambda r: {"template": r.choice(("welcome", "receipt", "digest")),
                                  "campaign_id": r.randint(1, 500), "ab_bucket": r.randint(0, 1)}),
)  # fmt: skip

TRACK_EVENTS = {"shop": _SHOP_EVENTS, "saas": _SAAS_EVENTS, "fitness": _APP_EVENTS,
                "server": _SERVER_EVENTS}  # fmt: skip


def person_traits(rng: random.Random) -> Props:
    """Traits of an identify call."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    traits: Props = {
        "email": f"{first.lower()}.{last.lower().replace(chr(39), '')}{rng.randint(1, 999)}"
        "@example.com",
        "firstName": first,
        "lastName": last,
        "plan": rng.choice(PLANS),
        "logins": rng.randint(1, 400),
        "newsletter": rng.random() < 0.4,
    }
    if rng.random() < 0.5:
        traits["address"] = {"city": rng.choice(("Berlin", "Austin", "Milan", "Osaka", "Leeds")),
                             "country": rng.choice(("DE", "US", "IT", "JP", "GB"))}  # fmt: skip
    if rng.random() < 0.3:
        traits["age"] = rng.randint(18, 80)
    if rng.random() < 0.2:
        traits["phone"] = None
    return traits


def group_traits(rng: random.Random, index: int) -> Props:
    """Traits of a group call for company `index` of COMPANIES."""
    name, industry = COMPANIES[index % len(COMPANIES)]
    return {
        "name": name,
        "industry": industry,
        "employees": rng.choice((8, 45, 120, 900, 12000)),
        "plan": rng.choice(PLANS[1:]),
        "website": f"https://www.{name.lower().replace(' ', '')}.example",
    }
