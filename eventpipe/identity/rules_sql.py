"""`identity.rules` in DuckDB SQL: placeholder ids and kpids, set-at-a-time.

Derived from the Python rules (the same PLACEHOLDERS and KPID_NAMESPACE, the character
sets listed from Python's own `str.isspace` and `str.casefold`), never restated; the
tests check them against `is_placeholder` and `uuid.uuid5`.
"""

from __future__ import annotations

import functools
import sys

from eventpipe.core.duck import quote_str
from eventpipe.identity.rules import KPID_NAMESPACE, PLACEHOLDERS


@functools.cache
def _python_whitespace() -> str:
    """Every character `str.strip()` removes (Unicode whitespace)."""
    return "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


@functools.cache
def _casefold_to_ascii() -> dict[str, str]:
    """Non-ASCII characters that `str.casefold()` turns into ASCII text (e.g. '\u017f' -> 's')."""
    found = {}
    for code in range(128, sys.maxunicode + 1):
        folded = chr(code).casefold()
        if folded.isascii():
            found[chr(code)] = folded
    return found


def placeholder_macros() -> list[str]:
    """SQL macros: ep_is_placeholder(x) is `identity_rules.is_placeholder(x)`.

    strip() is `trim` over Python's whitespace set; casefold() is `lower` on ASCII text;
    a non-ASCII id is a placeholder only if the few characters that casefold to ASCII
    (listed from Python) make it ASCII and then a placeholder. Fast path (nearly every
    real id): nothing to strip (printable ASCII at both ends) and longer than every
    placeholder (casefold never shortens text) means no placeholder.
    """
    placeholders = ", ".join(quote_str(p) for p in sorted(PLACEHOLDERS))
    longest = max(len(p) for p in PLACEHOLDERS)
    folded = "s"
    for char, ascii_text in sorted(_casefold_to_ascii().items()):
        folded = f"replace({folded}, {quote_str(char)}, {quote_str(ascii_text)})"
    return [
        f"CREATE OR REPLACE TEMP MACRO ep_strip(x) AS trim(x, {quote_str(_python_whitespace())})",
        f"CREATE OR REPLACE TEMP MACRO ep_fold(s) AS {folded}",
        f"CREATE OR REPLACE TEMP MACRO ep_placeholder_text(s) AS "
        f"(s = '' OR (strlen(s) = length(s) AND lower(s) IN ({placeholders})))",
        "CREATE OR REPLACE TEMP MACRO ep_is_placeholder(x) AS CASE "
        "WHEN x IS NULL THEN true "
        "WHEN x[1] BETWEEN '!' AND '~' AND x[-1] BETWEEN '!' AND '~' THEN "
        f"  length(x) <= {longest} AND CASE WHEN strlen(x) = length(x) "
        f"  THEN lower(x) IN ({placeholders}) ELSE ep_placeholder_text(ep_fold(x)) END "
        "ELSE ep_placeholder_text(ep_fold(ep_strip(x))) END",
    ]


def uuid5_sql(hex_digest: str) -> str:
    """SQL: the uuid5 text of a 40-hex-digit sha1 digest (version 5, RFC 4122 variant)."""
    h = hex_digest
    variant = f"substr('89ab', (position(substr({h}, 17, 1) IN '0123456789abcdef') - 1) % 4 + 1, 1)"
    return (
        f"substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-5' || substr({h}, 14, 3) || '-' "
        f"|| {variant} || substr({h}, 18, 3) || '-' || substr({h}, 21, 12)"
    )


def kpid_digest_sql(name: str) -> str:
    """SQL: sha1 hex digest of the kpid namespace bytes followed by the UTF-8 `name`."""
    return f"sha1(unhex('{KPID_NAMESPACE.hex}') || encode({name}))"
