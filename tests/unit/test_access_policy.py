"""The stream access policy (api/access.py), given/when/then: given a stream and a viewer, when they
ask for a purpose, then allowed or refused with (status, slug).

The first table is the policy's core (privacy × relation, for an adult who is not banned). The
product test then walks every privacy × relation × age × ban × age-restriction combination and
derives the expectation from that table and the documented precedence, so a change to either
shows up here as a failing row."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from spaktok.api.access import (
    ACCESS_EVENTS,
    StreamFacts,
    Viewer,
    facts_after,
    moderator_access,
    needs_follow_relation,
    owner_access,
    stream_access,
)

OK = "allowed"
HIDDEN = "stream-not-found"
PRIVACIES = ("public", "followers", "private")

# relation -> expected outcome per privacy (public, followers, private), adult and not banned
TABLE: dict[str, tuple[str, str, str]] = {
    "stranger": (OK, "followers-only", HIDDEN),
    "follower": (OK, OK, HIDDEN),
    "allowed": (OK, "followers-only", OK),
    "guest": (OK, OK, OK),
    "moderator": (OK, OK, OK),
    "owner": (OK, OK, OK),
    "platform-moderator": (OK, OK, OK),
    "admin": (OK, OK, OK),
}
ALWAYS = {"guest", "moderator", "owner", "platform-moderator", "admin"}
AGES = {"adult": 30, "unknown": None, "minor": 15}


def stream(
    privacy: str = "public", *, age_restricted: bool = False, banned: tuple[str, ...] = ()
) -> StreamFacts:
    return StreamFacts(
        stream_id="st_1",
        owner_id="owner",
        privacy=privacy,
        is_age_restricted=age_restricted,
        moderators=frozenset({"mod"}),
        guests=frozenset({"guest"}),
        banned=frozenset(banned),
        allowed=frozenset({"allowed"}),
    )


def viewer(relation: str, age: int | None = 30) -> Viewer:
    match relation:
        case "platform-moderator":
            return Viewer("staffer", frozenset({"moderation"}), age)
        case "admin":
            return Viewer("root", frozenset({"admin"}), age)
        case "follower":
            return Viewer("fan", age=age, follows=True)
        case "moderator":
            return Viewer("mod", age=age)
        case _:
            return Viewer(relation, age=age)


def outcome(access: object) -> str:
    assert hasattr(access, "allowed")
    return OK if access.allowed else access.slug  # type: ignore[attr-defined]


@pytest.mark.parametrize(("relation", "privacy"), list(itertools.product(TABLE, PRIVACIES)))
def test_the_core_table(relation: str, privacy: str) -> None:
    expected = TABLE[relation][PRIVACIES.index(privacy)]
    access = stream_access(stream(privacy), viewer(relation))
    assert outcome(access) == expected
    assert access.status == {OK: 200, HIDDEN: 404}.get(expected, 403)


def expectation(relation: str, privacy: str, age: str, banned: bool, age_restricted: bool) -> str:
    """The documented precedence, applied to the core table."""
    core = TABLE[relation][PRIVACIES.index(privacy)]
    if relation in ALWAYS:
        return OK
    if core == HIDDEN:
        return HIDDEN  # existence stays hidden: a banned or minor outsider learns nothing more
    if banned:
        return "user-banned"
    if core != OK:
        return core
    if age_restricted and age == "minor":
        return "age-restricted"
    return OK


COMBINATIONS = list(itertools.product(TABLE, PRIVACIES, AGES, (False, True), (False, True)))


@pytest.mark.parametrize(("relation", "privacy", "age", "banned", "age_restricted"), COMBINATIONS)
def test_every_combination(relation: str, privacy: str, age: str, banned: bool, age_restricted: bool) -> None:
    who = viewer(relation, AGES[age])
    given = stream(privacy, age_restricted=age_restricted, banned=(who.user_id,) if banned else ())
    expected = expectation(relation, privacy, age, banned, age_restricted)
    for purpose in ("document", "content"):
        assert outcome(stream_access(given, who, purpose)) == expected, purpose


def test_the_table_covers_refusals_of_each_kind() -> None:
    seen = {expectation(*c) for c in COMBINATIONS}
    assert seen == {OK, HIDDEN, "user-banned", "followers-only", "age-restricted"}


def test_a_banned_outsider_of_a_private_stream_gets_the_missing_stream_answer() -> None:
    access = stream_access(stream("private", banned=("troll",)), viewer("troll"))
    assert (access.status, access.slug, access.detail) == (404, "stream-not-found", "no stream 'st_1'")


def test_a_banned_allowed_user_of_a_private_stream_is_told_they_are_banned() -> None:
    access = stream_access(stream("private", banned=("allowed",)), viewer("allowed"))
    assert (access.status, access.slug) == (403, "user-banned")


def test_ban_comes_before_followers_only_and_followers_only_before_age() -> None:
    minor_stranger = viewer("stranger", 15)
    assert (
        outcome(stream_access(stream("followers", age_restricted=True), minor_stranger)) == "followers-only"
    )
    banned = stream("followers", age_restricted=True, banned=("stranger",))
    assert outcome(stream_access(banned, minor_stranger)) == "user-banned"


@pytest.mark.parametrize(
    ("age", "expected"), [("adult", OK), ("unknown", "age-restricted"), ("minor", "age-restricted")]
)
def test_to_watch_an_age_restricted_stream_the_age_must_be_known(age: str, expected: str) -> None:
    given = stream(age_restricted=True)
    assert outcome(stream_access(given, viewer("stranger", AGES[age]), "watch")) == expected
    assert outcome(stream_access(given, viewer("stranger", None), "content")) == OK  # reading: unknown passes
    assert outcome(stream_access(given, viewer("owner", None), "watch")) == OK


@pytest.mark.parametrize(
    ("relation", "purpose", "expected"),
    [
        ("stranger", "document", OK),  # the document says it was suspended
        ("stranger", "content", "stream-suspended"),
        ("stranger", "watch", "stream-suspended"),
        ("follower", "content", "stream-suspended"),
        ("owner", "watch", OK),
        ("moderator", "content", OK),
        ("platform-moderator", "watch", OK),
        ("admin", "content", OK),
    ],
)
def test_a_suspended_stream_keeps_its_document_and_withholds_its_content(
    relation: str, purpose: str, expected: str
) -> None:
    given = replace(stream(), moderation_status="suspended", status="ended")
    assert outcome(stream_access(given, viewer(relation), purpose)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("relation", "privacy", "expected"),
    [
        ("owner", "private", OK),
        ("admin", "private", OK),
        ("platform-moderator", "public", "forbidden"),  # analytics stay owner/admin
        ("stranger", "public", "forbidden"),
        ("follower", "followers", "forbidden"),
        ("stranger", "private", HIDDEN),
        ("allowed", "private", "forbidden"),  # knows it exists
        ("moderator", "private", "forbidden"),
    ],
)
def test_owner_reads(relation: str, privacy: str, expected: str) -> None:
    access = owner_access(stream(privacy), viewer(relation), "a stream's analytics")
    assert outcome(access) == expected
    assert access.status == {OK: 200, HIDDEN: 404}.get(expected, 403)


@pytest.mark.parametrize(
    ("relation", "privacy", "expected"),
    [
        ("owner", "private", OK),
        ("moderator", "private", OK),
        ("platform-moderator", "private", OK),
        ("admin", "public", OK),
        ("stranger", "public", "not-moderator"),
        ("guest", "private", "not-moderator"),
        ("stranger", "private", HIDDEN),
    ],
)
def test_the_moderation_log(relation: str, privacy: str, expected: str) -> None:
    assert outcome(moderator_access(stream(privacy), viewer(relation))) == expected


@pytest.mark.parametrize(
    ("relation", "privacy", "needed"),
    [
        ("stranger", "followers", True),
        ("allowed", "followers", True),
        ("stranger", "public", False),
        ("stranger", "private", False),
        ("owner", "followers", False),
        ("moderator", "followers", False),
        ("guest", "followers", False),
        ("admin", "followers", False),
    ],
)
def test_the_follow_relation_is_looked_up_only_when_it_decides(
    relation: str, privacy: str, needed: bool
) -> None:
    assert needs_follow_relation(stream(privacy), viewer(relation)) is needed


def test_facts_from_a_document_without_allowed_users() -> None:
    doc = {
        "streamId": "st_1",
        "userId": "owner",
        "privacy": "private",
        "isAgeRestricted": True,
        "moderators": ["mod"],
        "guestUsers": [],
        "bannedUsers": ["troll"],
        "status": "live",
        "moderationStatus": "active",
    }
    facts = StreamFacts.from_document(doc)
    assert facts.allowed == frozenset() and facts.banned == {"troll"} and facts.is_age_restricted
    assert StreamFacts.from_document({**doc, "allowedUserIds": ["ann"]}).allowed == {"ann"}


# -- an open feed: the events that change access -------------------------------------------------


def test_a_ban_refuses_the_banned_viewer_only() -> None:
    after = facts_after(stream(), "streams.UserBanned", {"user_id": "fan"})
    assert outcome(stream_access(after, viewer("follower"))) == "user-banned"
    assert outcome(stream_access(after, viewer("stranger"))) == OK
    assert (
        outcome(
            stream_access(facts_after(after, "streams.UserUnbanned", {"user_id": "fan"}), viewer("follower"))
        )
        == OK
    )


def test_a_privacy_change_re_evaluates_with_the_new_privacy() -> None:
    to_followers = facts_after(stream(), "streams.StreamUpdated", {"changes": {"privacy": "followers"}})
    assert outcome(stream_access(to_followers, viewer("stranger"))) == "followers-only"
    assert outcome(stream_access(to_followers, viewer("follower"))) == OK
    to_private = facts_after(stream(), "streams.StreamUpdated", {"changes": {"privacy": "private"}})
    assert outcome(stream_access(to_private, viewer("follower"))) == HIDDEN
    assert outcome(stream_access(to_private, viewer("allowed"))) == OK
    untouched = facts_after(stream(), "streams.StreamUpdated", {"changes": {"title": "x"}})
    assert untouched == stream()


def test_allowed_users_guests_and_moderators_follow_their_events() -> None:
    private = stream("private")
    emptied = facts_after(private, "streams.StreamUpdated", {"changes": {"allowed_user_ids": []}})
    assert outcome(stream_access(emptied, viewer("allowed"))) == HIDDEN
    demoted = facts_after(private, "streams.ModeratorRemoved", {"user_id": "mod"})
    assert outcome(stream_access(demoted, viewer("moderator"))) == HIDDEN
    off_stage = facts_after(private, "streams.GuestRemoved", {"user_id": "guest"})
    assert outcome(stream_access(off_stage, viewer("guest"))) == HIDDEN
    on_stage = facts_after(off_stage, "streams.GuestJoined", {"user_id": "guest", "guests": ["guest"]})
    assert outcome(stream_access(on_stage, viewer("guest"))) == OK


@pytest.mark.parametrize(
    ("kind", "payload"),
    [("streams.StreamSuspended", {}), ("streams.StreamEnded", {"reason": "suspended"})],
)
def test_a_suspension_refuses_everyone_but_owner_and_staff(kind: str, payload: dict[str, object]) -> None:
    after = facts_after(stream(), kind, payload)
    assert outcome(stream_access(after, viewer("follower"))) == "stream-suspended"
    assert outcome(stream_access(after, viewer("owner"))) == OK
    assert outcome(stream_access(after, viewer("platform-moderator"))) == OK


def test_an_ordinary_end_changes_nothing() -> None:
    assert facts_after(stream(), "streams.StreamEnded", {"reason": "ended_by_user"}) == stream()
    assert {"streams.UserBanned", "streams.StreamUpdated", "streams.StreamSuspended"} <= ACCESS_EVENTS
