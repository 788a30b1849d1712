"""Every identity-resolution rule, one table row each: events in, profiles and conflicts out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventpipe.identity.rules import (
    KPID_NAMESPACE,
    PLACEHOLDERS,
    Link,
    Members,
    is_placeholder,
    kpid_for,
    links_of,
    resolve,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def identify(anon: str | None, user: str | None, minute: int = 0) -> list[Link]:
    return links_of("identify", anon, user, None, at(minute))


def track(anon: str | None, user: str | None = None, minute: int = 0) -> list[Link]:
    return links_of("track", anon, user, None, at(minute))


def alias(previous: str | None, user: str | None, minute: int = 0, anon: str | None = None):
    return links_of("alias", anon, user, previous, at(minute))


def events(*groups: list[Link]) -> list[Link]:
    return [link for group in groups for link in group]


# (case, links, profiles, no_profile, conflicts)
# profiles: each a tuple of "u:<userId>" / "a:<anonymousId>", the FIRST being the user id
#   the kpid is anchored on; together they must be all the profiles there are.
# no_profile: ids that must have no kpid. conflicts: (anonymousId, kept user, other user).
CASES = [
    ("simple identify", identify("a1", "alice"), [("u:alice", "a:a1")], [], []),
    (
        "anonymous visitor who later identifies",
        events(track("a1", minute=0), track("a1", minute=5), identify("a1", "alice", 9)),
        [("u:alice", "a:a1")],
        [],
        [],
    ),
    ("anonymous-only visitor has no profile", track("a9"), [], ["a:a9"], []),
    ("server-side user without anonymousId", track(None, "alice"), [("u:alice",)], [], []),
    (
        "placeholder anonymousId: the user alone",
        identify("anonymous", "alice"),
        [("u:alice",)],
        ["a:anonymous"],
        [],
    ),
    ("placeholder userId links nothing", identify("a1", "guest"), [], ["a:a1", "u:guest"], []),
    ("whitespace anonymousId", identify("   ", "alice"), [("u:alice",)], ["a:   "], []),
    ("empty userId", identify("a1", ""), [], ["a:a1"], []),
    (
        "placeholders in every case and position",
        events(
            identify("[object Object]", "bob"),
            identify("a1", "NULL"),
            alias("Undefined", "carol"),
            alias("dave", "-1"),
        ),
        [("u:bob",), ("u:carol",)],
        ["a:a1", "u:dave", "u:Undefined", "u:NULL", "a:[object Object]"],
        [],
    ),
    (
        "one placeholder shared by many users merges nothing",
        events(identify("unknown", "alice"), identify("unknown", "bob"), alias("0", "carol")),
        [("u:alice",), ("u:bob",), ("u:carol",)],
        [],
        [],
    ),
    (
        "shared family laptop",
        events(
            identify("laptop", "alice", 1),
            identify("laptop", "bob", 2),
            identify("laptop", "alice", 3),
            identify("laptop", "bob", 4),
        ),
        [("u:alice", "a:laptop"), ("u:bob",)],
        [],
        [("laptop", "alice", "bob")],
    ),
    (
        "shared laptop: the earliest link wins, not the first listed",
        events(identify("laptop", "alice", 7), identify("laptop", "bob", 2)),
        [("u:bob", "a:laptop"), ("u:alice",)],
        [],
        [("laptop", "bob", "alice")],
    ),
    (
        "shared laptop: same timestamp, the smallest userId wins",
        events(identify("laptop", "zoe", 1), identify("laptop", "adam", 1)),
        [("u:adam", "a:laptop"), ("u:zoe",)],
        [],
        [("laptop", "adam", "zoe")],
    ),
    (
        "three users on one laptop: two conflicts",
        events(
            identify("laptop", "alice", 1),
            identify("laptop", "bob", 2),
            identify("laptop", "carol", 3),
        ),
        [("u:alice", "a:laptop"), ("u:bob",), ("u:carol",)],
        [],
        [("laptop", "alice", "bob"), ("laptop", "alice", "carol")],
    ),
    (
        "logout then another login, anonymousId not reset",
        events(
            identify("dev", "alice", 1),
            track("dev", "alice", 2),
            track("dev", None, 3),
            identify("dev", "bob", 4),
        ),
        [("u:alice", "a:dev"), ("u:bob",)],
        [],
        [("dev", "alice", "bob")],
    ),
    (
        "logout then another login, anonymousId reset",
        events(
            identify("dev-1", "alice", 1), track("dev-2", minute=3), identify("dev-2", "bob", 4)
        ),
        [("u:alice", "a:dev-1"), ("u:bob", "a:dev-2")],
        [],
        [],
    ),
    (
        "one user, many devices",
        events(
            identify("phone", "alice", 1), identify("laptop", "alice", 2), identify("tv", "alice")
        ),
        [("u:alice", "a:phone", "a:laptop", "a:tv")],
        [],
        [],
    ),
    (
        "alias chain a->b->c",
        events(alias("a", "b", 1), alias("b", "c", 2)),
        [("u:a", "u:b", "u:c")],
        [],
        [],
    ),
    (
        "alias chain listed backwards",
        events(alias("b", "c", 2), alias("a", "b", 1)),
        [("u:a", "u:b", "u:c")],
        [],
        [],
    ),
    (
        "alias cycle a->b->a",
        events(alias("a", "b", 1), alias("b", "a", 2)),
        [("u:a", "u:b")],
        [],
        [],
    ),
    (
        "alias cycle a->b->c->a",
        events(alias("a", "b", 1), alias("b", "c", 2), alias("c", "a", 3)),
        [("u:a", "u:b", "u:c")],
        [],
        [],
    ),
    ("alias to itself", alias("a", "a"), [("u:a",)], [], []),
    (
        "alias joins two identified profiles (explicit statement)",
        events(identify("web", "alice", 1), identify("crm", "A-42", 2), alias("alice", "A-42", 3)),
        [("u:alice", "u:A-42", "a:web", "a:crm")],
        [],
        [],
    ),
    (
        "alias makes a shared anonymous id no conflict",
        events(identify("dev", "alice", 1), identify("dev", "A-42", 2), alias("alice", "A-42", 3)),
        [("u:alice", "u:A-42", "a:dev")],
        [],
        [],
    ),
    (
        "alias event carrying an anonymousId",
        alias("old-id", "alice", 1, anon="a1"),
        [("u:alice", "u:old-id", "a:a1")],
        [],
        [],
    ),
    (
        "shared anonymous id does not bridge an alias",
        events(alias("a", "b", 1), identify("dev", "b", 2), identify("dev", "c", 3)),
        [("u:a", "u:b", "a:dev"), ("u:c",)],
        [],
        [("dev", "b", "c")],
    ),
    (
        "anonymous and user ids are separate namespaces",
        events(identify("x", "bob", 1), identify("a2", "x", 2)),
        [("u:bob", "a:x"), ("u:x", "a:a2")],
        [],
        [],
    ),
    (
        "ids are compared exactly (case matters)",
        events(identify("a1", "Alice", 1), identify("a2", "alice", 2)),
        [("u:Alice", "a:a1"), ("u:alice", "a:a2")],
        [],
        [],
    ),
    (
        "kpid anchored on the earliest-seen user id, not the smallest",
        events(identify("a1", "zed", 1), alias("zed", "adam", 2)),
        [("u:zed", "u:adam", "a:a1")],
        [],
        [],
    ),
    (
        "merged profiles keep the kpid of the one seen first",
        events(identify("a1", "bob", 1), identify("a2", "alice", 2), alias("alice", "bob", 3)),
        [("u:bob", "u:alice", "a:a1", "a:a2")],
        [],
        [],
    ),
    (
        "duplicate links count once",
        events(identify("a1", "alice", 1), identify("a1", "alice", 1), identify("a1", "bob", 2)),
        [("u:alice", "a:a1"), ("u:bob",)],
        [],
        [("a1", "alice", "bob")],
    ),
    ("no events", [], [], ["u:alice", "a:a1"], []),
]


def _split(ids: tuple[str, ...]) -> Members:
    users = frozenset(i[2:] for i in ids if i.startswith("u:"))
    anons = frozenset(i[2:] for i in ids if i.startswith("a:"))
    return Members(users, anons)


def _lookup(resolution, tagged: str) -> str | None:
    kind, identifier = tagged[:2], tagged[2:]
    table = resolution.user_kpids if kind == "u:" else resolution.anonymous_kpids
    return table.get(identifier)


@pytest.mark.parametrize(
    ("links", "profiles", "no_profile", "conflicts"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_identity_rules(links, profiles, no_profile, conflicts):
    resolution = resolve(links)
    expected_kpids = set()
    for profile in profiles:
        kpid = kpid_for(profile[0][2:])
        expected_kpids.add(kpid)
        assert resolution.members(kpid) == _split(profile)
        for tagged in profile:
            assert _lookup(resolution, tagged) == kpid, tagged
    all_kpids = set(resolution.user_kpids.values()) | set(resolution.anonymous_kpids.values())
    assert all_kpids == expected_kpids
    for tagged in no_profile:
        assert _lookup(resolution, tagged) is None, tagged
    found = [(c.anonymous_id, c.kept_user_id, c.other_user_id) for c in resolution.conflicts]
    assert found == conflicts


def test_at_least_25_rule_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        " ",
        "\t\n",
        *sorted(PLACEHOLDERS),
        "ANONYMOUS",
        " Guest ",
        "Null",
        "Na",
        "[OBJECT OBJECT]",
        "N/A",
        "UNDEFINED",
    ],
)
def test_placeholders(value):
    assert is_placeholder(value)
    assert links_of("identify", value, value, value, T0) == []


@pytest.mark.parametrize(
    "value", ["a1", "anonymous-1", "guest42", "00", "1", "nullable", "Alice", "[object]", "-"]
)
def test_real_ids_are_not_placeholders(value):
    assert not is_placeholder(value)


@pytest.mark.parametrize(
    ("event_type", "anon", "user", "previous", "expected"),
    [
        pytest.param("identify", "a1", "u1", None, [("identified", "u1", "a1")], id="identified"),
        pytest.param(
            "track", "a1", "u1", "p1", [("identified", "u1", "a1")], id="previousId only on alias"
        ),
        pytest.param("track", "a1", None, None, [], id="anonymous only"),
        pytest.param("page", None, "u1", None, [("user", "u1", None)], id="user only"),
        pytest.param("page", "null", "u1", None, [("user", "u1", None)], id="placeholder anon"),
        pytest.param("identify", "a1", "none", None, [], id="placeholder user"),
        pytest.param(
            "alias",
            "a1",
            "u1",
            "p1",
            [("alias", "u1", "p1"), ("identified", "u1", "a1")],
            id="alias",
        ),
        pytest.param("alias", None, "u1", "p1", [("alias", "u1", "p1")], id="alias without anon"),
        pytest.param("alias", None, "u1", "nil", [("user", "u1", None)], id="placeholder previous"),
        pytest.param("alias", "a1", "visitor", "p1", [], id="alias placeholder user"),
    ],
)
def test_links_of(event_type, anon, user, previous, expected):
    links = links_of(event_type, anon, user, previous, T0)
    assert [(link.kind, link.user_id, link.other_id) for link in links] == expected
    assert all(link.timestamp == T0 for link in links)


def test_earlier_anonymous_events_are_restitched():
    resolution = resolve(events(track("a1", minute=0), identify("a1", "alice", 9)))
    kpid = kpid_for("alice")
    assert resolution.kpid_of_event("a1", None) == kpid  # the page view before login
    assert resolution.kpid_of_event("a1", "alice") == kpid
    assert resolution.kpid_of_event("a2", None) is None
    assert resolution.kpid_of_event("anonymous", "guest") is None


def test_conflicting_user_events_keep_their_own_profile():
    resolution = resolve(events(identify("laptop", "alice", 1), identify("laptop", "bob", 2)))
    assert resolution.kpid_of_event("laptop", "bob") == kpid_for("bob")
    assert resolution.kpid_of_event("laptop", None) == kpid_for("alice")
    assert resolution.profile_of("laptop") == kpid_for("alice")
    assert resolution.profile_of("bob") == kpid_for("bob")
    assert resolution.profile_of("null") is None


def test_kpid_is_a_deterministic_uuid5():
    first = resolve(identify("a1", "alice"))
    again = resolve(identify("a1", "alice"))
    kpid = first.profile_of("alice")
    assert kpid == again.profile_of("alice") == str(uuid.uuid5(KPID_NAMESPACE, "alice"))
    parsed = uuid.UUID(kpid)
    assert str(parsed) == kpid and parsed.version == 5
    assert str(KPID_NAMESPACE) == "6f1d3c2a-7b4e-5a90-9c1e-2d8f4b6a0e17"  # never change it


def test_a_later_smaller_user_id_keeps_the_kpid():
    before = resolve(identify("a1", "zed", 1))
    after = resolve(events(identify("a1", "zed", 1), alias("zed", "aaron", 50)))
    assert before.profile_of("zed") == after.profile_of("zed") == after.profile_of("aaron")


def test_backfilled_older_id_moves_the_kpid():
    """Documented limitation: an id seen before the anchor becomes the new anchor."""
    after = resolve(events(identify("a1", "zed", 5), alias("zed", "old", 1)))
    assert after.profile_of("zed") == kpid_for("old")


def test_unknown_kpid_has_no_members():
    assert resolve(identify("a1", "alice")).members(kpid_for("bob")) == Members(
        frozenset(), frozenset()
    )


_users = st.sampled_from(["u0", "u1", "u2", "u3", "u4", "null"])
_anons = st.sampled_from(["a0", "a1", "a2", "a3", "", "guest"])
_events = st.tuples(
    st.sampled_from(["identify", "track", "alias"]),
    st.one_of(st.none(), _anons),
    st.one_of(st.none(), _users),
    st.one_of(st.none(), _users),
    st.integers(0, 4),
)


@given(st.lists(_events, max_size=25), st.randoms(use_true_random=False))
def test_resolution_is_independent_of_input_order(raw_events, rnd):
    links = [link for e in raw_events for link in links_of(*e[:4], at(e[4]))]
    shuffled = list(links)
    rnd.shuffle(shuffled)
    expected = resolve(links)
    assert resolve(shuffled) == expected
    assert resolve(reversed(links)) == expected


@given(st.lists(_events, max_size=25))
def test_anonymous_ids_never_merge_users(raw_events):
    links = [link for e in raw_events for link in links_of(*e[:4], at(e[4]))]
    users_only = [
        Link("user", link.user_id, None, link.timestamp) if link.kind == "identified" else link
        for link in links
    ]
    user_profiles = resolve(links).user_kpids
    alias_only = resolve(users_only).user_kpids
    assert user_profiles.keys() == alias_only.keys()
    for a in user_profiles:
        for b in user_profiles:
            assert (user_profiles[a] == user_profiles[b]) == (alias_only[a] == alias_only[b])


def test_many_independent_users_and_long_chains():
    """100k+ links: near-linear (union-find, iterative path compression, no recursion)."""
    links = []
    for i in range(50_000):
        links.extend(identify(f"anon-{i}", f"user-{i}", i % 60))
        links.extend(identify(f"anon-{i}", f"user-{i + 1}", 61))  # every device shared once
    for i in range(20_000):
        links.extend(alias(f"chain-{i}", f"chain-{i + 1}", 1))
    resolution = resolve(links)
    assert len(resolution.conflicts) == 50_000
    assert resolution.profile_of("anon-7") == kpid_for("user-7")
    assert len(set(resolution.user_kpids.values())) == 50_001 + 1
    assert resolution.profile_of("chain-20000") == resolution.profile_of("chain-0")
    assert len(resolution.members(resolution.profile_of("chain-0")).user_ids) == 20_001
