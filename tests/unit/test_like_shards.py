"""A hot stream's like shards (commands/stream_shards.py), given/when/then: each shard counts the likes
of its users under the stream's rules, and the stream folds the shards' running totals."""

from __future__ import annotations

from collections import Counter

from gwt import Aggregate, at
from test_stream_decider import HOST, STREAM, STREAM_ID, ended, started

from spaktok.commands.stream_shard_decide import StreamShardState, decide, evolve, fold_due, thaw
from spaktok.commands.stream_shards import (
    CloseShard,
    FoldShard,
    OpenShard,
    RecordShardLikes,
    SetShardBan,
    shard_address,
    shard_of,
    stream_shard_id,
)
from spaktok.commands.streams import FoldShardLikes
from spaktok.events.base import Event
from spaktok.events.stream_shards import (
    ShardBanSet,
    ShardClosed,
    ShardLikesHandedOver,
    ShardLikesRecorded,
    ShardOpened,
)
from spaktok.events.streams import ShardLikesFolded, UserBanned, UserUnbanned
from spaktok.processors.core import Sealed
from spaktok.processors.stream_shards import _merge_folds, _to_stream, tell_shards

SHARD = Aggregate(StreamShardState, decide, evolve, thaw)


def base(purpose: str, seconds: float, actor: str = "edge") -> dict[str, object]:
    return {"command_id": f"c-{purpose}-{seconds}", "issued_at": at(seconds), "actor_id": actor}


def opened() -> ShardOpened:
    return ShardOpened(stream_id=STREAM_ID, shard=2, owner_id=HOST, opened_at=at(0))


def likes(seconds: float, *taps: tuple[str, str, int]) -> RecordShardLikes:
    return RecordShardLikes(**base("likes", seconds), stream_id=STREAM_ID, shard=2, likes=list(taps))


def recorded(seconds: float, likes: dict[str, int], total: int, ids: list[str]) -> ShardLikesRecorded:
    count = sum(likes.values())
    return ShardLikesRecorded(
        stream_id=STREAM_ID,
        shard=2,
        likes=likes,
        count=count,
        shard_likes=total,
        recorded_at=at(seconds),
        action_ids=ids,
    )


def test_a_shard_counts_likes_once_per_action_and_keeps_its_running_total() -> None:
    SHARD.given(opened(), recorded(1, {"ann": 3}, 3, ["k1"])).when(
        likes(2, ("k1", "ann", 3), ("k2", "bob", 2), ("k2", "bob", 2), ("k3", "ann", 1))
    ).then(recorded(2, {"bob": 2, "ann": 1}, 6, ["k2", "k3"]))


def test_a_shard_refuses_likes_before_it_opens_and_after_the_stream_ends() -> None:
    SHARD.given().when(likes(1, ("k1", "ann", 1))).then_rejected("stream-not-live")
    closed = ShardClosed(stream_id=STREAM_ID, shard=2, closed_at=at(5))
    SHARD.given(opened(), closed).when(likes(6, ("k1", "ann", 1))).then_rejected("stream-not-live")


def test_a_banned_users_likes_are_dropped_until_the_ban_is_lifted() -> None:
    ban = ShardBanSet(stream_id=STREAM_ID, user_id="ann", banned=True)
    SHARD.given(opened(), ban).when(likes(1, ("k1", "ann", 5))).then()
    lifted = ShardBanSet(stream_id=STREAM_ID, user_id="ann", banned=False)
    SHARD.given(opened(), ban, lifted).when(likes(1, ("k1", "ann", 5))).then(
        recorded(1, {"ann": 5}, 5, ["k1"])
    )


def test_the_streams_forwards_are_idempotent_at_the_shard() -> None:
    again = OpenShard(**base("open", 9, HOST), stream_id=STREAM_ID, shard=2, owner_id=HOST)
    SHARD.given(opened()).when(again).then()
    ban = SetShardBan(**base("ban", 9, HOST), stream_id=STREAM_ID, shard=2, user_id="ann", banned=True)
    SHARD.given(opened(), ShardBanSet(stream_id=STREAM_ID, user_id="ann", banned=True)).when(ban).then()
    close = CloseShard(**base("close", 9, HOST), stream_id=STREAM_ID, shard=2)
    SHARD.given(opened(), ShardClosed(stream_id=STREAM_ID, shard=2, closed_at=at(5))).when(close).then()


def fold(seconds: float, **totals: int) -> FoldShardLikes:
    return FoldShardLikes(**base("fold", seconds), stream_id=STREAM_ID, totals=totals)


def folded(seconds: float, count: int, total: int, **totals: int) -> ShardLikesFolded:
    return ShardLikesFolded(count=count, totals=totals, total_likes=total, folded_at=at(seconds))


def test_the_stream_adds_what_each_shard_counted_since_its_last_fold() -> None:
    first = folded(1, 7, 7, **{"0": 4, "1": 3})
    STREAM.given(started(like_shards=2), first).when(fold(2, **{"0": 6, "1": 3})).then(
        folded(2, 2, 9, **{"0": 6})
    )


def test_a_late_or_repeated_fold_adds_nothing() -> None:
    first = folded(1, 7, 7, **{"0": 4, "1": 3})
    STREAM.given(started(like_shards=2), first).when(fold(2, **{"0": 4, "1": 2})).then()


def test_folds_count_after_the_end_and_an_unknown_stream_refuses_them() -> None:
    STREAM.given(started(like_shards=2), ended(60)).when(fold(61, **{"1": 5})).then(
        folded(61, 5, 5, **{"1": 5})
    )
    STREAM.given().when(fold(1, **{"0": 1})).then_rejected("stream-not-found")


def test_a_stream_state_remembers_the_folded_totals() -> None:
    state = STREAM.given(started(like_shards=2)).when(fold(1, **{"0": 4})).then_state()
    assert (state.chat.likes, state.chat.shard_likes, state.like_shards) == (4, {"0": 4}, 2)


def test_merged_folds_keep_each_shards_highest_total() -> None:
    folds = [
        fold(1, **{"0": 4}).model_dump(mode="json"),
        fold(2, **{"1": 2, "0": 3}).model_dump(mode="json"),
        fold(3, **{"1": 5}).model_dump(mode="json"),
    ]
    merged = _merge_folds(folds)
    assert merged["totals"] == {"0": 4, "1": 5}
    assert merged["command_id"] == _merge_folds(folds)["command_id"] != folds[0]["command_id"]


def sealed(event: Event, sequence: int = 1) -> Sealed:
    return Sealed(event, f"e-{sequence}", STREAM_ID, sequence, "c", "c", HOST, at(sequence))


def test_the_stream_tells_its_shards_that_it_opened_ended_and_whom_it_banned() -> None:
    command = FoldShardLikes(**base("any", 1), stream_id=STREAM_ID, totals={"0": 1})  # any command
    ban = UserBanned(
        user_id="ann", by=HOST, role="broadcaster", banned_at=at(2), comments_deleted_since=at(2)
    )
    unban = UserUnbanned(user_id="ann", by=HOST, role="broadcaster", unbanned_at=at(3))
    forwards = tell_shards(command, [sealed(started(like_shards=4)), sealed(ban, 2), sealed(unban, 3)], 4)
    sent = [f.command for f in forwards]
    assert [(type(c).__name__, c.shard) for c in sent[:4]] == [("OpenShard", n) for n in range(4)]
    bans = [c for c in sent if isinstance(c, SetShardBan)]
    assert [(c.shard, c.user_id, c.banned) for c in bans] == [(shard_of("ann", 4), "ann", True)] + [
        (shard_of("ann", 4), "ann", False)
    ]
    assert len({c.command_id for c in sent}) == len(sent)  # every forward has an id of its own
    closing = [f.command for f in tell_shards(command, [sealed(ended(60), 9)], 4)]
    assert [(type(c).__name__, c.shard) for c in closing] == [("CloseShard", n) for n in range(4)]
    assert tell_shards(command, [sealed(started())], 0) == []  # an unsharded stream tells nobody


def test_users_spread_over_shards_and_keep_theirs() -> None:
    spread = Counter(shard_of(f"user-{n}", 8) for n in range(8000))
    assert set(spread) == set(range(8)) and min(spread.values()) > 800
    assert shard_of("ann", 8) == shard_of("ann", 8)
    assert stream_shard_id(STREAM_ID, 3) == f"{STREAM_ID}:3"


def fold_shard(seconds: float) -> FoldShard:
    return FoldShard(**base("fold-timer", seconds, "system"), stream_id=STREAM_ID, shard=2)


def handed(total: int) -> ShardLikesHandedOver:
    return ShardLikesHandedOver(stream_id=STREAM_ID, shard=2, shard_likes=total)


def test_the_fold_timer_hands_over_what_the_shard_counted_since_the_last_fold_even_after_the_end() -> None:
    counted = (opened(), recorded(1, {"ann": 3}, 3, ["k1"]), recorded(2, {"bob": 3}, 6, ["k2"]))
    SHARD.given(*counted).when(fold_shard(3)).then(handed(6))
    SHARD.given(*counted, handed(6)).when(fold_shard(4)).then()  # a second tick: nothing new
    closed = ShardClosed(stream_id=STREAM_ID, shard=2, closed_at=at(5))
    SHARD.given(*counted, handed(3), closed).when(fold_shard(6)).then(handed(6))
    assert fold_due(SHARD.given(*counted, handed(3)).state) and not fold_due(
        SHARD.given(*counted, handed(6)).state
    )


def test_likes_reach_the_stream_by_the_fold_timer_not_by_every_batch() -> None:
    """One fold per shard per timer tick, however many like batches: the stream's cost per second
    does not grow with the traffic (bench/hot_stream.py measured 1 -> 26 folds a second before)."""
    state = SHARD.given(opened(), recorded(1, {"ann": 3}, 3, ["k1"])).state
    assert _to_stream(likes(1, ("k1", "ann", 3)), [sealed(recorded(1, {"ann": 3}, 3, ["k1"]))], state) == []
    [fold] = _to_stream(fold_shard(2), [sealed(handed(3))], state)
    assert isinstance(fold.command, FoldShardLikes) and fold.command.totals == {"2": 3}


def test_a_shards_id_reads_back_as_its_stream_and_number() -> None:
    assert shard_address(stream_shard_id("st_a:b", 7)) == {"stream_id": "st_a:b", "shard": 7}
