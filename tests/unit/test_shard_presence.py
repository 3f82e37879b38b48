"""A hot stream's presence in its shards (commands/stream_shards.py), given/when/then: the stream tells
each shard who joined and left, the shard takes its viewers' heartbeats and times out the silent
ones, and the stream lets those visits leave with the watch time to their last sign of life."""

from __future__ import annotations

from gwt import at
from test_like_shards import SHARD, base, opened, sealed
from test_stream_decider import HOST, STREAM, STREAM_ID, ended, joined, left, ms, started, sweep

from spaktok.commands.parts import flattened
from spaktok.commands.stream_shard_decide import TIMEOUTS_PER_EVENT, StreamShardState, join, split
from spaktok.commands.stream_shards import (
    ChangeShardViewers,
    RecordShardHeartbeats,
    SweepShardViewers,
    shard_of,
)
from spaktok.commands.streams import TimeOutViewers
from spaktok.events.stream_shards import (
    ShardClosed,
    ShardHeartbeatsRecorded,
    ShardViewersChanged,
    ShardViewersTimedOut,
)
from spaktok.events.streams import ViewerLeft
from spaktok.processors.stream_shards import STREAM_SHARDS, _to_stream, tell_shards
from spaktok.processors.streams import _merge_lists

SILENT_S = 120


def changes(seconds: float, *changed: tuple[str, float | None]) -> ChangeShardViewers:
    listed = [(user, None if when is None else ms(when)) for user, when in changed]
    return ChangeShardViewers(**base("viewers", seconds, HOST), stream_id=STREAM_ID, shard=2, changes=listed)


def viewers_changed(
    joined: dict[str, float] | None = None, left: list[str] | None = None
) -> ShardViewersChanged:
    joined_at = {user: at(seconds) for user, seconds in (joined or {}).items()}
    return ShardViewersChanged(stream_id=STREAM_ID, shard=2, joined=joined_at, left=left or [])


def beats(seconds: float, *sent: tuple[str, float]) -> RecordShardHeartbeats:
    listed = [(user, ms(when)) for user, when in sent]
    return RecordShardHeartbeats(**base("beats", seconds), stream_id=STREAM_ID, shard=2, beats=listed)


def beaten(count: int, **latest: float) -> ShardHeartbeatsRecorded:
    beats_at = {user: at(seconds) for user, seconds in latest.items()}
    return ShardHeartbeatsRecorded(stream_id=STREAM_ID, shard=2, beats=beats_at, count=count)


def shard_sweep(seconds: float) -> SweepShardViewers:
    return SweepShardViewers(
        **base("sweep", seconds, "system"), stream_id=STREAM_ID, shard=2, silent_ms=SILENT_S * 1000
    )


def timed_out(seconds: float, **visits: tuple[float, float]) -> ShardViewersTimedOut:
    in_ms = {user: (ms(joined_s), ms(seen_s)) for user, (joined_s, seen_s) in visits.items()}
    return ShardViewersTimedOut(stream_id=STREAM_ID, shard=2, visits=in_ms, swept_at=at(seconds))


# --- the shard ---------------------------------------------------------------------------------


def test_a_shard_holds_the_viewers_the_stream_tells_it_of_and_each_users_last_change_wins() -> None:
    SHARD.given(opened()).when(changes(5, ("ann", 1), ("bob", 2), ("bob", None), ("cy", 3))).then(
        viewers_changed({"ann": 1, "cy": 3})
    )
    SHARD.given(opened(), viewers_changed({"ann": 1})).when(changes(5, ("ann", None), ("ann", 4))).then(
        viewers_changed({"ann": 4})
    )


def test_a_replayed_change_changes_nothing() -> None:
    SHARD.given(opened(), viewers_changed({"ann": 1})).when(changes(5, ("ann", 1), ("bob", None))).then()


def test_heartbeats_count_for_viewers_only_each_at_its_latest() -> None:
    given = SHARD.given(opened(), viewers_changed({"ann": 1, "bob": 2}))
    given.when(beats(30, ("ann", 20), ("zed", 21), ("ann", 25), ("ann", 22))).then(beaten(4, ann=25))
    given.when(beats(30, ("zed", 20))).then_rejected("not-watching")
    SHARD.given().when(beats(30, ("ann", 20))).then_rejected("stream-not-live")


def test_the_sweep_times_out_viewers_silent_for_longer_than_the_limit_with_their_visit() -> None:
    past = (opened(), viewers_changed({"ann": 1, "bob": 2}), beaten(1, ann=100))
    SHARD.given(*past).when(shard_sweep(2 + SILENT_S)).then()  # bob silent exactly the limit: kept
    SHARD.given(*past).when(shard_sweep(3 + SILENT_S)).then(timed_out(3 + SILENT_S, bob=(2, 2)))


def test_a_timed_out_viewer_is_no_longer_the_shards_and_a_new_visit_is() -> None:
    past = (opened(), viewers_changed({"ann": 1}), timed_out(200, ann=(1, 1)))
    SHARD.given(*past).when(beats(201, ("ann", 201))).then_rejected("not-watching")
    back = SHARD.given(*past, viewers_changed({"ann": 210})).when(beats(220, ("ann", 220)))
    back.then(beaten(1, ann=220))


def test_a_late_time_out_of_an_old_visit_leaves_the_new_one() -> None:
    state = SHARD.given(opened(), viewers_changed({"ann": 210}), timed_out(300, ann=(1, 1))).state
    assert state.viewers["ann"] == [ms(210), ms(210)]


def test_a_closed_shard_forgets_its_viewers_and_sweeps_nothing() -> None:
    closed = ShardClosed(stream_id=STREAM_ID, shard=2, closed_at=at(50))
    given = SHARD.given(opened(), viewers_changed({"ann": 1}), closed)
    assert len(given.state.viewers) == 0
    given.when(shard_sweep(500)).then()
    given.when(changes(501, ("bob", 400))).then()


def test_a_shards_viewers_are_stored_in_parts_and_come_back_whole() -> None:
    users = {f"user-{n}": float(n % 50) for n in range(5000)}
    state = SHARD.given(opened(), viewers_changed(users), beaten(1, **{"user-7": 80})).state
    main, grouped = split(state)
    contents = flattened(grouped)
    assert "viewers" not in main and len(contents) > 1  # parts by user, none holding the whole map
    back = join(main, contents)
    assert dict(back.viewers.items()) == dict(state.viewers.items())
    assert back.viewers["user-7"] == [ms(7), ms(80)] and back.status == "live"
    assert STREAM_SHARDS.is_active(back) and not STREAM_SHARDS.is_active(StreamShardState())


# --- the stream --------------------------------------------------------------------------------


def time_out(seconds: float, **visits: tuple[float, float]) -> TimeOutViewers:
    in_ms = {user: (ms(joined_s), ms(seen_s)) for user, (joined_s, seen_s) in visits.items()}
    return TimeOutViewers(**base("time-out", seconds, "system"), stream_id=STREAM_ID, visits=in_ms)


def test_the_stream_lets_timed_out_visits_leave_with_watch_time_to_the_last_sign_of_life() -> None:
    given = STREAM.given(started(like_shards=4), joined("ann", 10), joined("bob", 20), joined("cy", 30))
    given.when(time_out(300, bob=(20, 150), ann=(10, 40))).then(
        ViewerLeft(user_id="ann", left_at=at(300), watch_time=30, reason="timed_out", viewer_count=2),
        ViewerLeft(user_id="bob", left_at=at(300), watch_time=130, reason="timed_out", viewer_count=1),
    )


def test_a_visit_the_stream_no_longer_has_stays() -> None:
    """ann left and came back at 60: the shard's time-out of her visit from 10 must not end the new one."""
    back = STREAM.given(started(like_shards=4), joined("ann", 10), left("ann", 50, 40), joined("ann", 60))
    back.when(time_out(300, ann=(10, 40), zed=(1, 2))).then()


def test_a_sharded_streams_sweep_leaves_its_viewers_to_the_shards_but_ends_a_lost_broadcast() -> None:
    given = STREAM.given(started(like_shards=4), joined("ann", 10))
    given.when(sweep(1000)).then()
    assert given.when(sweep(1000, grace_s=60)).events()[-1].type == "streams.StreamEnded"


# --- the forwards between them -----------------------------------------------------------------


def test_the_stream_tells_each_shard_its_joins_and_leaves_in_one_command() -> None:
    command = time_out(1, ann=(0, 0))  # any command
    gone = ViewerLeft(user_id="cy", left_at=at(5), watch_time=1, reason="timed_out", viewer_count=0)
    ending = ViewerLeft(user_id="dee", left_at=at(6), watch_time=1, reason="stream_ended", viewer_count=0)
    events = [joined("ann", 1), joined("bob", 2), left("ann", 3, 2), gone, ending]
    forwards = tell_shards(command, [sealed(e, n) for n, e in enumerate(events, 1)], 4)
    sent = {c.shard: c.changes for c in (f.command for f in forwards) if isinstance(c, ChangeShardViewers)}
    expected: dict[int, list[tuple[str, int | None]]] = {}
    for user, joined_ms in (("ann", ms(1)), ("bob", ms(2)), ("ann", None)):
        expected.setdefault(shard_of(user, 4), []).append((user, joined_ms))
    assert sent == expected  # the shards time out and the end closes them: those leaves are not sent
    assert tell_shards(command, [sealed(joined("ann", 1))], 0) == []


def test_a_shards_time_out_is_forwarded_to_the_stream() -> None:
    state = SHARD.given(opened()).state
    envelope = sealed(timed_out(200, bob=(2, 2)))
    [forward] = _to_stream(shard_sweep(200), [envelope], state)
    assert isinstance(forward.command, TimeOutViewers) and forward.command.visits == {"bob": (ms(2), ms(2))}
    assert "streams.TimeOutViewers" not in STREAM_SHARDS.merge_types  # merged, they would outgrow a record


def test_a_mass_time_out_is_cut_into_events_and_forwards_a_record_can_hold() -> None:
    """2,500 silent viewers (a shard of a big stream whose broadcast dropped for everyone): three
    events of at most TIMEOUTS_PER_EVENT visits, three forwards, every viewer timed out once. As one
    event and one forward (before) this grew with the audience: 7 MB at 1 M viewers."""
    users = {f"user-{n}": 1.0 for n in range(2500)}
    state = SHARD.given(opened(), viewers_changed(users)).state
    events = SHARD.given(opened(), viewers_changed(users)).when(shard_sweep(500)).events()
    assert [len(e.visits) for e in events] == [TIMEOUTS_PER_EVENT, TIMEOUTS_PER_EVENT, 500]
    assert {u for e in events for u in e.visits} == set(users)
    forwards = _to_stream(shard_sweep(500), [sealed(e, n) for n, e in enumerate(events, 1)], state)
    assert len(forwards) == 3 and len({f.command.command_id for f in forwards}) == 3
    assert max(len(f.command.to_bytes()) for f in forwards) < 100_000


def test_a_batchs_changes_for_one_shard_are_merged_in_order() -> None:
    first = changes(1, ("ann", 1)).model_dump(mode="json")
    second = changes(2, ("ann", None)).model_dump(mode="json")
    merged = _merge_lists([first, second])
    assert merged["changes"] == [["ann", ms(1)], ["ann", None]]
    assert ChangeShardViewers.model_validate(merged).changes == [("ann", ms(1)), ("ann", None)]


def test_after_the_end_a_time_out_changes_nothing() -> None:
    STREAM.given(started(like_shards=4), joined("ann", 10), ended(60)).when(
        time_out(300, ann=(10, 20))
    ).then()
