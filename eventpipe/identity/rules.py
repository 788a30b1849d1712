"""Identity resolution rules: which ids form one profile, and its `kpid`.

Pure Python, no Beam and no I/O: the reference semantics that the identity job
(`identity.graph`, in SQL) must reproduce. `links_of` turns one event into evidence,
`resolve` turns all links into profiles, kpids and conflicts (order-independent;
union-find after one sort), `Resolution.kpid_of_event` gives an event its kpid. The
rules in full: docs/identity.md ("The rules").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "anonymous",
        "guest",
        "null",
        "none",
        "nil",
        "undefined",
        "unknown",
        "0",
        "-1",
        "[object object]",
        "n/a",
        "na",
        "test",
        "user",
        "visitor",
    }
)

# Fixed forever: changing it changes every kpid.
KPID_NAMESPACE = uuid.UUID("6f1d3c2a-7b4e-5a90-9c1e-2d8f4b6a0e17")

LinkKind = Literal["identified", "alias", "user"]
_KIND_ORDER = {"alias": 0, "identified": 1, "user": 2}


def is_placeholder(identifier: str | None) -> bool:
    """True when the id is absent, blank, or a known placeholder (any case)."""
    if identifier is None:
        return True
    text = identifier.strip()
    return not text or text.casefold() in PLACEHOLDERS


@dataclass(frozen=True)
class Link:
    """One piece of identity evidence from one event.

    `other_id` is the anonymousId ("identified"), the previousId ("alias"), or None
    ("user": the userId alone). `timestamp` must be timezone-aware.
    """

    kind: LinkKind
    user_id: str
    other_id: str | None
    timestamp: datetime


@dataclass(frozen=True, order=True)
class Conflict:
    """An anonymous id also linked to a user of another profile: recorded, not merged."""

    anonymous_id: str
    kept_user_id: str
    other_user_id: str
    timestamp: datetime


class Members(NamedTuple):
    """The ids of one profile, per namespace."""

    user_ids: frozenset[str]
    anonymous_ids: frozenset[str]


def links_of(
    event_type: str,
    anonymous_id: str | None,
    user_id: str | None,
    previous_id: str | None,
    timestamp: datetime,
) -> list[Link]:
    """The identity links one event gives (placeholder ids are treated as absent)."""
    if is_placeholder(user_id):
        return []
    assert user_id is not None
    links: list[Link] = []
    if event_type == "alias" and not is_placeholder(previous_id):
        links.append(Link("alias", user_id, previous_id, timestamp))
    if not is_placeholder(anonymous_id):
        links.append(Link("identified", user_id, anonymous_id, timestamp))
    return links or [Link("user", user_id, None, timestamp)]


def kpid_for(anchor_user_id: str) -> str:
    """The kpid of a profile anchored on this user id."""
    return str(uuid.uuid5(KPID_NAMESPACE, anchor_user_id))


class _UnionFind:
    """Union-find over strings, with path compression and union by size."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}

    def add(self, item: str) -> None:
        if item not in self.parent:
            self.parent[item] = item
            self.size[item] = 1

    def find(self, item: str) -> str:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


@dataclass(frozen=True)
class Resolution:
    """The profiles: user and anonymous ids mapped to kpids, and the conflicts seen."""

    user_kpids: dict[str, str]
    anonymous_kpids: dict[str, str]
    conflicts: tuple[Conflict, ...]
    _members: dict[str, Members] = field(default_factory=dict, repr=False, compare=False)

    def profile_of(self, identifier: str | None) -> str | None:
        """The kpid of a user id, else of an anonymous id; None when it has no profile."""
        if is_placeholder(identifier):
            return None
        assert identifier is not None
        return self.user_kpids.get(identifier) or self.anonymous_kpids.get(identifier)

    def kpid_of_event(self, anonymous_id: str | None, user_id: str | None) -> str | None:
        """An event's kpid: its userId's profile, else its anonymousId's."""
        if user_id is not None and not is_placeholder(user_id) and user_id in self.user_kpids:
            return self.user_kpids[user_id]
        if anonymous_id is None or is_placeholder(anonymous_id):
            return None
        return self.anonymous_kpids.get(anonymous_id)

    def members(self, kpid: str) -> Members:
        """The user and anonymous ids of a profile (both empty for an unknown kpid)."""
        return self._members.get(kpid, Members(frozenset(), frozenset()))


def _sort_key(link: Link) -> tuple[datetime, int, str, str]:
    return (link.timestamp, _KIND_ORDER[link.kind], link.user_id, link.other_id or "")


def _user_components(links: list[Link]) -> tuple[_UnionFind, dict[str, datetime]]:
    """Union every user id with its aliases; note when each user id was first seen."""
    users = _UnionFind()
    first_seen: dict[str, datetime] = {}
    for link in links:
        ids = [link.user_id, link.other_id] if link.kind == "alias" else [link.user_id]
        for user_id in ids:
            assert user_id is not None
            users.add(user_id)
            first_seen.setdefault(user_id, link.timestamp)
        if link.kind == "alias":
            assert link.other_id is not None
            users.union(link.user_id, link.other_id)
    return users, first_seen


def _user_kpids(users: _UnionFind, first_seen: dict[str, datetime]) -> dict[str, str]:
    """Each user id's kpid, anchored on its component's earliest-seen user id."""
    anchors: dict[str, tuple[datetime, str]] = {}
    for user_id, seen in first_seen.items():
        root = users.find(user_id)
        candidate = (seen, user_id)
        if root not in anchors or candidate < anchors[root]:
            anchors[root] = candidate
    roots = {root: kpid_for(anchor) for root, (_, anchor) in anchors.items()}
    return {user_id: roots[users.find(user_id)] for user_id in first_seen}


def _attach_anonymous(
    links: list[Link], user_kpids: dict[str, str]
) -> tuple[dict[str, str], tuple[Conflict, ...]]:
    """Give each anonymous id its first user's profile; record links to other profiles."""
    first_user: dict[str, str] = {}
    conflicts: dict[tuple[str, str], Conflict] = {}
    for link in links:
        if link.kind != "identified":
            continue
        anonymous_id = link.other_id
        assert anonymous_id is not None
        kept = first_user.setdefault(anonymous_id, link.user_id)
        key = (anonymous_id, link.user_id)
        if user_kpids[kept] != user_kpids[link.user_id] and key not in conflicts:
            conflicts[key] = Conflict(anonymous_id, kept, link.user_id, link.timestamp)
    anonymous_kpids = {anon: user_kpids[user] for anon, user in first_user.items()}
    return anonymous_kpids, tuple(sorted(conflicts.values()))


def _members_by_kpid(
    user_kpids: dict[str, str], anonymous_kpids: dict[str, str]
) -> dict[str, Members]:
    """Each kpid's user and anonymous ids."""
    users: dict[str, set[str]] = {}
    anons: dict[str, set[str]] = {}
    for user_id, kpid in user_kpids.items():
        users.setdefault(kpid, set()).add(user_id)
    for anonymous_id, kpid in anonymous_kpids.items():
        anons.setdefault(kpid, set()).add(anonymous_id)
    return {
        kpid: Members(frozenset(ids), frozenset(anons.get(kpid, ()))) for kpid, ids in users.items()
    }


def resolve(links: Iterable[Link]) -> Resolution:
    """Apply the module's rules to all links; the same links in any order, same result."""
    ordered = sorted(set(links), key=_sort_key)
    users, first_seen = _user_components(ordered)
    user_kpids = _user_kpids(users, first_seen)
    anonymous_kpids, conflicts = _attach_anonymous(ordered, user_kpids)
    members = _members_by_kpid(user_kpids, anonymous_kpids)
    return Resolution(user_kpids, anonymous_kpids, conflicts, members)
