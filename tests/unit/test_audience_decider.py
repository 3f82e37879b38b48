"""The audience-shard decider: follower sets, and notices fanned out in batches."""

from __future__ import annotations

from gwt import Aggregate, at

from spaktok.commands.audience_decide import RECIPIENTS_PER_NOTICE, AudienceState, decide, evolve, thaw
from spaktok.commands.audiences import AUDIENCE_SHARDS, AddFollower, NotifyFollowers, RemoveFollower, shard_of
from spaktok.events.audiences import FollowerAdded, FollowerRemoved, FollowersNotified

AUDIENCE = Aggregate(AudienceState, decide, evolve, thaw)


def added(follower: str) -> FollowerAdded:
    return FollowerAdded(follower_id=follower, followed_at=at(0))


def add(follower: str) -> AddFollower:
    return AddFollower(
        command_id=f"add-{follower}",
        issued_at=at(1),
        actor_id=follower,
        channel_id="star",
        shard=0,
        follower_id=follower,
    )


def remove(follower: str) -> RemoveFollower:
    return RemoveFollower(
        command_id=f"rm-{follower}",
        issued_at=at(2),
        actor_id=follower,
        channel_id="star",
        shard=0,
        follower_id=follower,
    )


def notify() -> NotifyFollowers:
    return NotifyFollowers(
        command_id="notify",
        issued_at=at(5),
        actor_id="star",
        channel_id="star",
        shard=0,
        notification_id="n-1",
        stream_id="s-1",
        title="Live now",
        actor_name="Star",
    )


def test_followers_are_added_once_and_removed() -> None:
    AUDIENCE.given().when(add("ann")).then(FollowerAdded(follower_id="ann", followed_at=at(1)))
    AUDIENCE.given(added("ann")).when(add("ann")).then()
    AUDIENCE.given(added("ann")).when(remove("ann")).then(FollowerRemoved(follower_id="ann"))
    AUDIENCE.given().when(remove("ann")).then()


def test_a_stream_start_notifies_every_follower_of_the_shard_in_batches() -> None:
    followers = [f"f{i:05d}" for i in range(RECIPIENTS_PER_NOTICE + 5)]
    notices = AUDIENCE.given(*map(added, followers)).when(notify()).events()
    assert [len(n.recipients) for n in notices if isinstance(n, FollowersNotified)] == [
        RECIPIENTS_PER_NOTICE,
        5,
    ]
    assert sorted(r for n in notices if isinstance(n, FollowersNotified) for r in n.recipients) == followers
    assert {
        (n.notification_id, n.stream_id, n.title) for n in notices if isinstance(n, FollowersNotified)
    } == {("n-1", "s-1", "Live now")}


def test_nobody_to_notify_means_no_notice() -> None:
    AUDIENCE.given(added("ann"), FollowerRemoved(follower_id="ann")).when(notify()).then()


def test_shards_are_stable_and_spread() -> None:
    shards = [shard_of(f"user-{i}") for i in range(2000)]
    assert shards == [shard_of(f"user-{i}") for i in range(2000)]
    assert set(shards) == set(range(AUDIENCE_SHARDS))
