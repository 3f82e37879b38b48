"""The broadcaster decider in given/when/then form: one live stream per user at a time."""

from __future__ import annotations

import pytest
from gwt import Aggregate, at

from spaktok.commands.base import Rejection
from spaktok.commands.broadcaster_decide import FOLLOWING_LIMIT, BroadcasterState, decide, evolve
from spaktok.commands.broadcasters import FollowUser, ReleaseBroadcast, StartStream, UnfollowUser
from spaktok.commands.streams import JoinStream
from spaktok.events.broadcasters import (
    BroadcastClaimed,
    BroadcasterCommandRejected,
    BroadcastReleased,
    UserFollowed,
)

BROADCASTER = Aggregate(BroadcasterState, decide, evolve)
USER = "host"


def claimed(stream_id: str, seconds: float = 0) -> BroadcastClaimed:
    return BroadcastClaimed(stream_id=stream_id, claimed_at=at(seconds))


def released(stream_id: str, seconds: float) -> BroadcastReleased:
    return BroadcastReleased(stream_id=stream_id, released_at=at(seconds))


def start(stream_id: str, seconds: float = 0) -> StartStream:
    return StartStream(
        command_id=f"start-{stream_id}-{seconds}",
        issued_at=at(seconds),
        actor_id=USER,
        user_id=USER,
        stream_id=stream_id,
        username="Hostess",
        title="Friday night",
        category="music",
        ingest_url=f"rtmp://ingest/{stream_id}",
        playback_url=f"https://cdn/{stream_id}.m3u8",
    )


def release(stream_id: str, seconds: float) -> ReleaseBroadcast:
    return ReleaseBroadcast(
        command_id=f"release-{stream_id}-{seconds}",
        issued_at=at(seconds),
        actor_id="system",
        user_id=USER,
        stream_id=stream_id,
    )


def test_starting_a_stream_claims_the_users_slot() -> None:
    BROADCASTER.given().when(start("s-1", 5)).then(claimed("s-1", 5))


def test_the_claim_makes_the_stream_active() -> None:
    state = BROADCASTER.given().when(start("s-1")).then_state()
    assert state == BroadcasterState(active_stream_id="s-1", version=1)
    assert state.stats() == {"activeStreamId": "s-1"}


def test_a_second_stream_while_live_is_refused() -> None:
    refused = BROADCASTER.given(claimed("s-1")).when(start("s-2", 10)).then_rejected("stream-already-active")
    assert refused.detail == "you are already live in stream s-1; end it first"


def test_starting_the_live_stream_again_is_refused_too() -> None:
    BROADCASTER.given(claimed("s-1")).when(start("s-1", 10)).then_rejected("stream-already-active")


def test_releasing_the_active_stream_frees_the_slot() -> None:
    given = BROADCASTER.given(claimed("s-1"))
    given.when(release("s-1", 60)).then(released("s-1", 60))
    assert given.when(release("s-1", 60)).then_state() == BroadcasterState(active_stream_id=None, version=2)


def test_after_the_release_the_user_goes_live_again() -> None:
    BROADCASTER.given(claimed("s-1"), released("s-1", 60)).when(start("s-2", 70)).then(claimed("s-2", 70))


def test_releasing_another_stream_changes_nothing() -> None:
    BROADCASTER.given(claimed("s-2")).when(release("s-1", 80)).then()


def test_releasing_with_nothing_active_changes_nothing() -> None:
    BROADCASTER.given().when(release("s-1", 80)).then()
    BROADCASTER.given(claimed("s-1"), released("s-1", 60)).when(release("s-1", 61)).then()


def test_a_late_release_of_an_old_stream_keeps_the_new_one_active() -> None:
    given = BROADCASTER.given(claimed("s-1"), released("s-1", 60), claimed("s-2", 70))
    given.when(release("s-1", 75)).then()
    given.when(start("s-3", 80)).then_rejected("stream-already-active")


def test_a_command_of_another_aggregate_is_refused() -> None:
    join = JoinStream(command_id="j", issued_at=at(0), actor_id="ann", stream_id="s-1", username="ann")
    BROADCASTER.given().when(join).then_rejected("unsupported-command")


def test_a_rejection_takes_a_sequence_number_and_changes_nothing_else() -> None:
    rejected = BroadcasterCommandRejected(command_type="broadcasters.StartStream", reason="r", detail="d")
    assert BROADCASTER.given(claimed("s-1"), rejected).state == BroadcasterState(
        active_stream_id="s-1", version=2
    )


@pytest.mark.parametrize("state", [BroadcasterState(), BroadcasterState(active_stream_id="s-1", version=7)])
def test_state_survives_a_dict_round_trip(state: BroadcasterState) -> None:
    assert BroadcasterState.from_dict(state.to_dict()) == state


# --- following channels --------------------------------------------------------------------------


def follow(followee: str, seconds: float = 1) -> FollowUser:
    return FollowUser(
        command_id=f"follow-{followee}-{seconds}",
        issued_at=at(seconds),
        actor_id=USER,
        user_id=USER,
        followee_id=followee,
    )


def unfollow(followee: str, seconds: float = 2) -> UnfollowUser:
    return UnfollowUser(
        command_id=f"unfollow-{followee}-{seconds}",
        issued_at=at(seconds),
        actor_id=USER,
        user_id=USER,
        followee_id=followee,
    )


def test_following_a_channel() -> None:
    BROADCASTER.given().when(follow("star")).then(UserFollowed(followee_id="star", followed_at=at(1)))


def test_following_twice_or_unfollowing_a_stranger_changes_nothing() -> None:
    BROADCASTER.given(UserFollowed(followee_id="star", followed_at=at(0))).when(follow("star")).then()
    BROADCASTER.given().when(unfollow("star")).then()


def test_unfollowing() -> None:
    state = (
        BROADCASTER.given(UserFollowed(followee_id="star", followed_at=at(0)))
        .when(unfollow("star", 5))
        .then_state()
    )
    assert state.following == frozenset()


def test_nobody_follows_themself_and_following_is_bounded() -> None:
    BROADCASTER.given().when(follow(USER)).then_rejected("cannot-follow-self")
    crowded = BroadcasterState(following=frozenset(f"c{i}" for i in range(FOLLOWING_LIMIT)))
    with pytest.raises(Rejection) as refused:
        decide(follow("one-more"), crowded)
    assert refused.value.reason == "follow-limit"
