"""Seed 000's per-type rules: which properties each event type requires or permits.

Plain data, read by the validation SQL builder (`validate.py`) and by the docs.
"""

from __future__ import annotations

# Properties permitted only for the listed types (present and non-null elsewhere -> rejected).
PERMITTED_ONLY_FOR: dict[str, tuple[str, ...]] = {
    "event": ("track",),
    "groupId": ("group",),
    "previousId": ("alias",),
    "category": ("page",),
    "name": ("page", "screen"),
    "properties": ("page", "screen", "track"),
    "traits": ("identify", "group"),
}

# Properties required (non-null) for the listed types.
REQUIRED_FOR: dict[str, tuple[str, ...]] = {
    "event": ("track",),
    "groupId": ("group",),
    "previousId": ("alias",),
    "userId": ("identify", "alias"),
}

# String properties that must not be empty when present.
NON_EMPTY = ("anonymousId", "userId", "event", "groupId", "previousId")


def article(word: str) -> str:
    """'an' before a vowel sound, else 'a' (for messages like 'an identify event')."""
    return "an" if word[:1] in "aeiou" else "a"
