"""Real-world user-agent strings with a skewed (Zipf-like) popularity.

The table is built from the exact string formats the browsers, in-app webviews,
native HTTP stacks, crawlers and command-line tools send, with version numbers
that were really shipped. Each family has a share of traffic; inside a family the
newest versions are the most common (Zipf over the listed order).

`AGENTS` holds every string once with its kind; `pick_browser(rng)` and the other
pickers draw from the cumulative weights (bisect, so they are cheap per call).
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

BROWSER = "browser"  # a web browser or an in-app webview: page and track events
BOT = "bot"  # a crawler or an uptime monitor: page views, no identity
SCRIPT = "script"  # command-line tools and HTTP libraries calling the API
IOS_APP = "ios_app"  # a native iOS app's own HTTP stack
ANDROID_APP = "android_app"  # a native Android app's own HTTP stack

_WIN = "Windows NT 10.0; Win64; x64"
_MAC = "Macintosh; Intel Mac OS X 10_15_7"
_CHROME = "Mozilla/5.0 ({os}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"
_CHROME_MOBILE = (
    "Mozilla/5.0 (Linux; Android {a}; {m}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36"
)
_EDGE_BUILDS = {
    141: "3537.57", 140: "3485.94", 139: "3405.125", 138: "3351.109", 137: "3296.93",
    136: "3240.76", 135: "3179.98", 134: "3124.93", 133: "3065.92", 132: "2957.140",
    131: "2903.112", 130: "2849.80", 129: "2792.89", 128: "2739.79", 126: "2592.113",
    122: "2365.92", 120: "2210.144", 118: "2088.76", 114: "1823.82", 109: "1518.78",
}  # fmt: skip
_FIREFOX_VERSIONS = (143, 144, 142, 141, 140, 128, 139, 138, 137, 136, 135, 115, 133, 132, 131)
_CHROME_VERSIONS = (*range(141, 117, -1), 116, 114, 112, 110, 109, 106, 103)
_SAFARI_MAC = ("18.6", "26.0", "18.5", "18.4", "17.6", "18.3", "18.1", "17.5", "17.4.1",
               "17.2.1", "16.6", "16.5", "15.6.1", "14.1.2", "13.1.2")  # fmt: skip
_IOS = (("18_6", "18.6"), ("18_5", "18.5"), ("26_0", "26.0"), ("18_6_2", "18.6"),
        ("18_3_2", "18.3"), ("17_6_1", "17.6"), ("18_4_1", "18.4"), ("17_5_1", "17.5"),
        ("18_1_1", "18.1"), ("16_7_10", "16.6"), ("17_4_1", "17.4.1"), ("15_8_3", "15.6.1"),
        ("16_6_1", "16.6"), ("12_5_7", "12.1.2"))  # fmt: skip
_ANDROID_MODELS = (("14", "SM-S918B"), ("13", "SM-A536B"), ("14", "Pixel 8"), ("13", "Pixel 7"),
                   ("12", "M2101K6G"), ("11", "SM-A515F"), ("14", "CPH2487"), ("13", "2201117TY"),
                   ("10", "SM-G973F"), ("9", "SM-J737P"), ("15", "Pixel 9 Pro"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Agent:
    """One user-agent string, what sends it and hints an SDK might state explicitly."""

    ua: str
    kind: str
    browser: str | None = None  # name as an SDK might send it in context.browser
    os: str | None = None  # name as an SDK might send it in context.os
    device_type: str | None = None  # mobile | tablet | desktop


def _zipf(items: list[str], share: float, exponent: float = 1.1) -> list[tuple[str, float]]:
    weights = [1.0 / (rank + 1) ** exponent for rank in range(len(items))]
    total = sum(weights)
    return [(ua, share * w / total) for ua, w in zip(items, weights, strict=True)]


def _browser_families() -> list[tuple[str, float]]:
    fam: list[tuple[str, float]] = []
    fam += _zipf([_CHROME.format(os=_WIN, v=v) for v in _CHROME_VERSIONS[:26]], 24)
    fam.append((_CHROME.format(os="Windows NT 6.1; Win64; x64", v=109), 0.4))
    fam += _zipf([_CHROME.format(os=_MAC, v=v) for v in _CHROME_VERSIONS[:16]], 7)
    fam += _zipf([_CHROME.format(os="X11; Linux x86_64", v=v) for v in _CHROME_VERSIONS[:8]], 1.2)
    fam += _zipf([_CHROME.format(os=f"X11; CrOS x86_64 {b}", v=v) for b, v in
                  (("14541.0.0", 141), ("14541.0.0", 140), ("16181.61.0", 139),
                   ("15917.71.0", 126), ("15359.58.0", 118))], 1.0)  # fmt: skip
    fam += _zipf([_CHROME_MOBILE.format(a="10", m="K", v=v) for v in _CHROME_VERSIONS[:18]], 13)
    fam += _zipf([_CHROME_MOBILE.format(a=a, m=m, v=v) for (a, m), v in
                  zip(_ANDROID_MODELS, (112, 110, 118, 116, 106, 103, 114, 109, 96, 83, 124),
                      strict=True)], 1.5)  # fmt: skip
    fam += _zipf([f"Mozilla/5.0 (iPhone; CPU iPhone OS {o} like Mac OS X) AppleWebKit/605.1.15 "
                  f"(KHTML, like Gecko) Version/{s} Mobile/15E148 Safari/604.1" for o, s in _IOS],
                 15)  # fmt: skip
    fam += _zipf([f"Mozilla/5.0 (iPad; CPU OS {o} like Mac OS X) AppleWebKit/605.1.15 "
                  f"(KHTML, like Gecko) Version/{s} Mobile/15E148 Safari/604.1" for o, s in _IOS[:6]],
                 2)  # fmt: skip
    fam += _zipf([f"Mozilla/5.0 (iPhone; CPU iPhone OS {o} like Mac OS X) AppleWebKit/605.1.15 "
                  f"(KHTML, like Gecko) CriOS/{c} Mobile/15E148 Safari/604.1" for o, c in
                  (("18_6", "140.0.7339.122"), ("18_5", "138.0.7204.156"),
                   ("17_6_1", "131.0.6778.134"), ("18_3_2", "134.0.6998.99"),
                   ("16_7_10", "124.0.6367.111"))], 2)  # fmt: skip
    fam += _zipf([f"Mozilla/5.0 ({_MAC}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{s} "
                  "Safari/605.1.15" for s in _SAFARI_MAC], 5)  # fmt: skip
    fam += _zipf([_CHROME.format(os=_WIN, v=v) + f" Edg/{v}.0.{b}"
                  for v, b in _EDGE_BUILDS.items()], 7)  # fmt: skip
    fam += _zipf([_CHROME.format(os=_MAC, v=v) + f" Edg/{v}.0.{_EDGE_BUILDS[v]}"
                  for v in (141, 140, 138, 131)], 0.6)  # fmt: skip
    fam += _zipf([_CHROME_MOBILE.format(a="10", m="K", v=v) + f" EdgA/{v}.0.{_EDGE_BUILDS[v]}"
                  for v in (140, 138, 131)], 0.4)  # fmt: skip
    fam += [("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 "
             "(KHTML, like Gecko) Version/18.0 EdgiOS/140.3485.94 Mobile/15E148 Safari/605.1.15",
             0.15)]  # fmt: skip
    fam += _zipf([f"Mozilla/5.0 ({_WIN}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
                  for v in _FIREFOX_VERSIONS], 3)  # fmt: skip
    fam += _zipf([f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{v}.0) Gecko/20100101 "
                  f"Firefox/{v}.0" for v in _FIREFOX_VERSIONS[:7]], 0.8)  # fmt: skip
    fam += _zipf([f"Mozilla/5.0 (X11; {os}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
                  for os, v in itertools.product(("Linux x86_64", "Ubuntu; Linux x86_64"),
                                                 _FIREFOX_VERSIONS[:4])], 0.9)  # fmt: skip
    fam += _zipf([f"Mozilla/5.0 (Android {a}; Mobile; rv:{v}.0) Gecko/{v}.0 Firefox/{v}.0"
                  for a, v in (("15", 143), ("14", 142), ("13", 140), ("12", 128))], 0.5)  # fmt: skip
    fam += _zipf([f"Mozilla/5.0 (iPhone; CPU iPhone OS {o} like Mac OS X) AppleWebKit/605.1.15 "
                  f"(KHTML, like Gecko) FxiOS/{v} Mobile/15E148 Safari/605.1.15"
                  for o, v in (("18_6", "143.0"), ("18_5", "141.1"), ("17_7", "131.3"))],
                 0.3)  # fmt: skip
    samsung = [("14", "SM-S918B", "28.0", 130), ("14", "SM-A546B", "27.0", 125),
               ("13", "SM-A536B", "26.0", 122), ("13", "SM-G991B", "25.0", 121),
               ("12", "SM-A125F", "23.0", 115), ("11", "SM-A515F", "20.0", 106),
               ("10", "SM-G960F", "17.0", 102)]  # fmt: skip
    fam += _zipf(
        [
            _CHROME_MOBILE.format(a="10", m="K", v=c).replace(
                "Chrome/", f"SamsungBrowser/{s} Chrome/"
            )
            for _, _, s, c in samsung[:4]
        ],
        2.5,
    )
    fam += _zipf([f"Mozilla/5.0 (Linux; Android {a}; SAMSUNG {m}) AppleWebKit/537.36 (KHTML, like "
                  f"Gecko) SamsungBrowser/{s} Chrome/{c}.0.0.0 Mobile Safari/537.36"
                  for a, m, s, c in samsung], 1.5)  # fmt: skip
    fam += _zipf([_CHROME.format(os=_WIN, v=c) + f" OPR/{o}" for c, o in
                  (("140", "124.0.0.0"), ("139", "123.0.0.0"), ("137", "121.0.0.0"),
                   ("134", "119.0.0.0"), ("131", "116.0.0.0"), ("124", "110.0.0.0"))],
                 1.0)  # fmt: skip
    fam += _zipf([_CHROME.format(os=_MAC, v=138) + " OPR/122.0.0.0",
                  _CHROME_MOBILE.format(a="10", m="K", v=137) + " OPR/91.0.2254.78468",
                  _CHROME_MOBILE.format(a="10", m="K", v=130) + " OPR/86.0.4363.64285",
                  _CHROME.format(os=_WIN, v=138) + " OPR/122.0.0.0 (Edition std-2)"],
                 0.5)  # fmt: skip
    fam += _zipf(
        [  # in-app webviews
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/529.0.0.41.108;FBBV/780128911;FBDV/iPhone15,2;FBMD/"
            "iPhone;FBSN/iOS;FBSV/18.6;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;FBRV/782553210]",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Mobile/15E148 Instagram 389.0.0.29.81 (iPhone14,5; iOS 18_5; en_US; en; scale=3.00; "
            "1170x2532; 759812347; IABMV/1)",
            "Mozilla/5.0 (Linux; Android 14; SM-A546B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Version/4.0 Chrome/139.0.7258.158 Mobile Safari/537.36 Instagram "
            "395.0.0.47.91 Android (34/14; 450dpi; 1080x2131; samsung; SM-A546B; a54x; s5e8835; en_GB; "
            "787654321)",
            "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Version/4.0 Chrome/138.0.7204.179 Mobile Safari/537.36 "
            "[FB_IAB/FB4A;FBAV/512.0.0.55.109;]",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) GSA/386.0.784460376 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 12; M2101K6G Build/SKQ1.210908.001; wv) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Version/4.0 Chrome/136.0.7103.125 Mobile Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Mobile/15E148 LinkedInApp/9.30.4376",
            "Mozilla/5.0 (Linux; Android 14; CPH2487 Build/UKQ1.230924.001; wv) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Version/4.0 Chrome/135.0.7049.111 Mobile Safari/537.36 "
            "trill_390103 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly app_version/39.1.3",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Mobile/15E148 Snapchat/13.33.0.40 (like Safari/8620.2.4.10.8, panda)",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Mobile/15E148 Twitter for iPhone/10.48",
        ],
        4,
    )
    fam += _zipf(
        [  # other browsers and devices
            _CHROME.format(os=_WIN, v=138) + " YaBrowser/25.8.0.0 Safari/537.36",
            _CHROME_MOBILE.format(a="10", m="K", v=133) + " DuckDuckGo/5",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/18.5 Mobile/15E148 Safari/604.1 Ddg/18.5",
            "Mozilla/5.0 (Linux; U; Android 13; en-us; 2201117TY Build/TKQ1.221114.001) AppleWebKit/"
            "537.36 (KHTML, like Gecko) Version/4.0 Chrome/112.0.5615.136 Mobile Safari/537.36 "
            "XiaoMi/MiuiBrowser/14.8.0-gn",
            "Mozilla/5.0 (Linux; U; Android 10; en-US; RMX2030 Build/QKQ1.200209.002) AppleWebKit/537.36"
            " (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.58 UCBrowser/13.4.0.1306 Mobile "
            "Safari/537.36",
            "Mozilla/5.0 (Linux; Android 10; HarmonyOS; ELS-NX9; HMSCore 6.13.0.321) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/114.0.5735.196 HuaweiBrowser/15.0.4.312 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Silk/134.4.3 like Chrome/134.0.6998.167 Safari/537.36",
            "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.5) AppleWebKit/537.36 (KHTML, like Gecko) "
            "SamsungBrowser/4.0 Chrome/85.0.4183.93 TV Safari/537.36",
            "Mozilla/5.0 (PlayStation; PlayStation 5/6.50) AppleWebKit/605.1.15 (KHTML, like Gecko)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox Series X) AppleWebKit/537.36 (KHTML, "
            "like Gecko) Chrome/48.0.2564.82 Safari/537.36 Edge/20.02",
            _CHROME.format(os=_WIN, v=129) + " Vivaldi/6.9.3447.51",
            "Mozilla/5.0 (X11; Linux aarch64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36",
        ],
        1.2,
    )
    fam += _zipf(
        [  # old Internet Explorer and legacy Edge
            "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
            "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045",
            "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; Trident/6.0)",
            "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
            "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0; SLCC2; .NET CLR 2.0.50727)",
            "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; .NET CLR 1.1.4322)",
        ],
        0.3,
    )
    return fam


_BOTS = [
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/141.0.7390.54 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html) Chrome/141.0.7390.54 Safari/537.36",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
    "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.6778.33 Safari/537.36",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
    "+claudebot@anthropic.com)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot; help@moz.com)",
    "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36"
    " (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
    "Twitterbot/1.0",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0 (compatible; SeznamBot/4.0; +https://o-seznam.cz/napoveda/vyhledavani/en/"
    "seznambot-crawler/)",
    "Screaming Frog SEO Spider/20.4",
    "Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/70.0.0.0 Safari/537.36",
]
_SCRIPTS = [
    "python-requests/2.32.3", "curl/8.5.0", "python-requests/2.31.0", "curl/7.81.0",
    "Go-http-client/1.1", "axios/1.7.9", "okhttp/4.12.0", "node-fetch/1.0 (+https://github.com/"
    "bitinn/node-fetch)", "Go-http-client/2.0", "PostmanRuntime/7.43.0", "curl/7.68.0",
    "Python-urllib/3.11", "Wget/1.21.4", "Apache-HttpClient/4.5.14 (Java/17.0.12)",
    "Java/17.0.12", "Scrapy/2.11.2 (+https://scrapy.org)", "aiohttp/3.10.5", "Ruby",
]  # fmt: skip
_IOS_APPS = [
    "Fitly/4.12.0 (com.example.fitly; build:4120; iOS 18.6.0) Alamofire/5.9.1",
    "Fitly/4120 CFNetwork/3826.500.131 Darwin/24.5.0",
    "Fitly/4.11.2 (com.example.fitly; build:4112; iOS 18.5.0) Alamofire/5.9.1",
    "Fitly/4112 CFNetwork/1568.100.1 Darwin/24.0.0",
    "Fitly/4.10.0 (com.example.fitly; build:4100; iOS 17.6.1) Alamofire/5.8.1",
    "Fitly/4100 CFNetwork/1496.0.7 Darwin/23.5.0",
    "Fitly/4.8.3 (com.example.fitly; build:4083; iOS 16.7.10) Alamofire/5.8.1",
]
_ANDROID_APPS = [
    "Dalvik/2.1.0 (Linux; U; Android 14; SM-S918B Build/UP1A.231005.007)",
    "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)",
    "Dalvik/2.1.0 (Linux; U; Android 13; SM-A536B Build/TP1A.220624.014)",
    "Dalvik/2.1.0 (Linux; U; Android 15; Pixel 9 Pro Build/AP3A.241005.015)",
    "Dalvik/2.1.0 (Linux; U; Android 12; M2101K6G MIUI/V13.0.4.0.SKFMIXM)",
    "Dalvik/2.1.0 (Linux; U; Android 13; CPH2487 Build/TP1A.220905.001)",
    "Dalvik/2.1.0 (Linux; U; Android 11; SM-A515F Build/RP1A.200720.012)",
    "okhttp/4.12.0",
]


def _browser_hint(ua: str) -> str | None:
    for token, name in (("Edg/", "Microsoft Edge"), ("SamsungBrowser", "Samsung Internet"),
                        ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("FxiOS", "Firefox"),
                        ("CriOS", "Chrome"), ("Chrome/", "Google Chrome"),
                        ("Version/", "Safari")):  # fmt: skip
        if token in ua:
            return name
    return None


def _os_hint(ua: str) -> tuple[str | None, str]:
    if "iPad" in ua:
        return "iPadOS", "tablet"
    if "iPhone" in ua:
        return "iOS", "mobile"
    if "Android" in ua:
        return "Android", "tablet" if "KFTRWI" in ua else "mobile"
    if "CrOS" in ua:
        return "Chrome OS", "desktop"
    if "Windows" in ua:
        return "Microsoft Windows", "desktop"
    if "Mac OS X" in ua:
        return "Mac OS X", "desktop"
    if "Ubuntu" in ua:
        return "Ubuntu", "desktop"
    if "Linux" in ua:
        return "Linux", "desktop"
    return None, "desktop"


def _build() -> list[tuple[Agent, float]]:
    table: list[tuple[Agent, float]] = []
    for ua, weight in _browser_families():
        os_name, device_type = _os_hint(ua)
        table.append((Agent(ua, BROWSER, _browser_hint(ua), os_name, device_type), weight))
    for kind, strings in ((BOT, _BOTS), (SCRIPT, _SCRIPTS), (IOS_APP, _IOS_APPS),
                          (ANDROID_APP, _ANDROID_APPS)):  # fmt: skip
        table += [(Agent(ua, kind), w) for ua, w in _zipf(strings, 1.0, 0.9)]
    merged: dict[str, tuple[Agent, float]] = {}
    for agent, weight in table:  # a string listed twice keeps one row with both weights
        first = merged.get(agent.ua)
        merged[agent.ua] = (agent, weight) if first is None else (first[0], first[1] + weight)
    return list(merged.values())


_TABLE = _build()
AGENTS: tuple[Agent, ...] = tuple(agent for agent, _ in _TABLE)


class _Picker:
    """Draws agents of the given kinds with their popularity weights."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        rows = [(a, w) for a, w in _TABLE if a.kind in kinds]
        self.agents = [a for a, _ in rows]
        self.cum = list(itertools.accumulate(w for _, w in rows))

    def __call__(self, rng: random.Random) -> Agent:
        x = rng.random() * self.cum[-1]
        return self.agents[bisect.bisect_right(self.cum, x)]


pick_browser = _Picker((BROWSER,))
pick_bot = _Picker((BOT,))
pick_script = _Picker((SCRIPT,))
pick_ios_app = _Picker((IOS_APP,))
pick_android_app = _Picker((ANDROID_APP,))
