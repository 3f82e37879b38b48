"""An open feed re-checks its clients when a ban, privacy change or suspension arrives (api/live.py)."""

from __future__ import annotations

from typing import Any

from spaktok.api.access import StreamFacts, Viewer
from spaktok.api.live import CLOSED, StreamFeed, Subscription

FACTS = StreamFacts(stream_id="st_1", owner_id="owner", allowed=frozenset({"ann"}))


def env(kind: str, sequence: int, **payload: Any) -> dict[str, Any]:
    return {"type": kind, "sequence": sequence, "occurred_at": "2026-12-02T00:00:00Z", "payload": payload}


def watching(feed: StreamFeed, *viewers: Viewer) -> list[Subscription]:
    subs = []
    for who in viewers:
        sub = Subscription("st_1", 10)
        feed.subscribers.add(sub)
        assert feed.admit(sub, FACTS, who).allowed
        subs.append(sub)
    return subs


def test_a_ban_closes_the_banned_viewers_subscription_only() -> None:
    feed = StreamFeed()
    troll, fan = watching(feed, Viewer("troll"), Viewer("fan"))
    feed.apply(env("streams.UserBanned", 5, user_id="troll", comments_deleted_since="2026-12-02T00:00:00Z"))
    assert (troll.refused, troll.reason) == ("user-banned", "user-banned")
    assert not fan.reason


def test_a_privacy_change_re_evaluates_every_subscriber() -> None:
    feed = StreamFeed()
    fan, follower, ann, owner = watching(
        feed, Viewer("fan"), Viewer("follower", follows=True), Viewer("ann"), Viewer("owner")
    )
    feed.apply(env("streams.StreamUpdated", 6, changes={"privacy": "followers"}, updated_at="x"))
    assert (fan.refused, ann.refused) == ("followers-only", "followers-only")
    assert not follower.reason and not owner.reason
    feed.apply(env("streams.StreamUpdated", 7, changes={"privacy": "private"}, updated_at="x"))
    assert follower.refused == "private-stream" and not owner.reason


def test_a_suspension_closes_everyone_but_staff_and_owner() -> None:
    feed = StreamFeed()
    fan, staff, owner = watching(feed, Viewer("fan"), Viewer("s", frozenset({"moderation"})), Viewer("owner"))
    feed.apply(env("streams.StreamSuspended", 8, reporters_in_window=10, suspended_at="x"))
    assert fan.refused == "stream-suspended" and not staff.reason and not owner.reason


def test_a_ban_that_arrives_before_the_clients_read_still_counts() -> None:
    feed = StreamFeed()
    sub = Subscription("st_1", 10)
    feed.subscribers.add(sub)
    feed.apply(env("streams.UserBanned", 5, user_id="troll", comments_deleted_since="x"))  # before admit
    assert feed.admit(sub, FACTS, Viewer("troll")).slug == "user-banned"
    assert sub.refused == "user-banned"


async def test_a_refused_subscription_ends_with_the_closing_marker() -> None:
    feed = StreamFeed()
    (troll,) = watching(feed, Viewer("troll"))
    feed.apply(env("streams.UserBanned", 5, user_id="troll", comments_deleted_since="x"))
    assert await troll.next() == CLOSED


def test_an_event_published_again_after_a_worker_crash_is_relayed_once() -> None:
    """The same comment at the same position twice (re-decided after a crash): one feed item."""
    feed = StreamFeed()
    comment = {**env("streams.CommentPosted", 4, comment_id="c4", text="hi"), "aggregate_type": "stream"}
    later = {**env("streams.CommentPosted", 5, comment_id="c5", text="yo"), "aggregate_type": "stream"}
    for event in (comment, later, comment, later):
        feed.apply(event)
    assert [item["commentId"] for item in feed.items] == ["c4", "c5"]
    battle = {**env("battles.BattleScored", 4), "aggregate_type": "battle"}  # another aggregate's 4
    feed.apply(battle)
    assert feed.relayed == {"stream:": 5, "battle:": 4}
