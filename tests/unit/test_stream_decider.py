"""The stream decider in given/when/then form: lifecycle, audience, heartbeats, chat and likes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from gwt import Aggregate, at
from pydantic import ValidationError

from spaktok.commands.broadcasters import StartStream
from spaktok.commands.stream_decide import decide
from spaktok.commands.stream_state import LIKE_ID_MEMORY, StreamState, evolve, millis, thaw
from spaktok.commands.streams import (
    AddModerator,
    BanUser,
    DeleteComment,
    EndStream,
    JoinStream,
    LeaveStream,
    LiftTimeout,
    OpenStream,
    PinComment,
    RecordHeartbeats,
    RecordLikes,
    ReportStream,
    SendComment,
    SweepViewers,
    TimeoutUser,
    UnbanUser,
    UnpinComment,
    UpdateStream,
)
from spaktok.events.envelope import derive_id
from spaktok.events.streams import (
    CommentDeleted,
    CommentPinned,
    CommentPosted,
    CommentUnpinned,
    HeartbeatsRecorded,
    LikesRecorded,
    ModerationNotified,
    ModeratorAdded,
    StreamCommandRejected,
    StreamEnded,
    StreamFlagged,
    StreamReported,
    StreamStarted,
    StreamUpdated,
    TimeoutLifted,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
    ViewerJoined,
    ViewerLeft,
)

STREAM = Aggregate(StreamState, decide, evolve, thaw)
STREAM_ID = "s-1"
HOST = "host"


def ms(seconds: float) -> int:
    return millis(at(seconds))


# --- the past: events as the log holds them ----------------------------------------------------
# Counters on ViewerJoined / CommentPosted that `evolve` recomputes itself are given as zeros.

STREAM_FIELDS: dict[str, Any] = dict(
    stream_id=STREAM_ID,
    username="Hostess",
    user_profile_image="https://img/host.png",
    title="Friday night",
    category="music",
    tags=["live", "jazz"],
    language="en",
    privacy="public",
    is_recorded=True,
    allow_comments=True,
    allow_gifts=True,
    is_age_restricted=False,
    is_premium=False,
    quality="720p",
    location={"city": "Lyon", "lat": 45.76},
    schedule_id="sched-9",
    ingest_url="rtmp://ingest/s-1",
    playback_url="https://cdn/s-1.m3u8",
)


def started(**changes: Any) -> StreamStarted:
    return StreamStarted(**{**STREAM_FIELDS, "user_id": HOST, "started_at": at(0), **changes})


def ended(seconds: float) -> StreamEnded:
    return StreamEnded(
        ended_at=at(seconds),
        reason="ended_by_broadcaster",
        duration=0,
        peak_viewer_count=0,
        total_views=0,
        likes=0,
        comments=0,
        gifts=0,
        gift_revenue=0,
    )


def joined(user: str, seconds: float) -> ViewerJoined:
    return ViewerJoined(
        user_id=user, username=user, joined_at=at(seconds), viewer_count=0, peak_viewer_count=0, total_views=0
    )


def left(user: str, seconds: float, watch_time: int) -> ViewerLeft:
    return ViewerLeft(user_id=user, left_at=at(seconds), watch_time=watch_time, reason="left", viewer_count=0)


def commented(user: str, seconds: float, comments: int) -> CommentPosted:
    return CommentPosted(
        comment_id=f"cm-{user}-{seconds}",
        user_id=user,
        username=user,
        text="hi",
        posted_at=at(seconds),
        comments=comments,
    )


def liked(seconds: float, total_likes: int, *action_ids: str) -> LikesRecorded:
    return LikesRecorded(
        likes={"fan": 1},
        count=1,
        total_likes=total_likes,
        recorded_at=at(seconds),
        action_ids=list(action_ids),
    )


# --- the present: commands ----------------------------------------------------------------------


def base(kind: str, actor: str, seconds: float) -> dict[str, Any]:
    return dict(
        command_id=f"{kind}-{actor}-{seconds}", issued_at=at(seconds), actor_id=actor, stream_id=STREAM_ID
    )


def open_stream(**changes: Any) -> OpenStream:
    fields = {k: v for k, v in STREAM_FIELDS.items() if k != "stream_id"}
    return OpenStream(**{**base("open", HOST, 0), **fields, **changes})


def end(seconds: float, actor: str = HOST, **changes: Any) -> EndStream:
    return EndStream(**base("end", actor, seconds), **changes)


def join(user: str, seconds: float) -> JoinStream:
    return JoinStream(
        **base("join", user, seconds), username=f"@{user}", user_profile_image=f"https://img/{user}"
    )


def leave(user: str, seconds: float) -> LeaveStream:
    return LeaveStream(**base("leave", user, seconds))


def heartbeats(seconds: float, *beats: tuple[str, int]) -> RecordHeartbeats:
    return RecordHeartbeats(**base("beats", "edge", seconds), beats=list(beats))


def comment(user: str, seconds: float, text: str = "hello", **changes: Any) -> SendComment:
    return SendComment(**base("comment", user, seconds), username=f"@{user}", text=text, **changes)


def likes(seconds: float, *taps: tuple[str, str, int]) -> RecordLikes:
    return RecordLikes(**base("likes", "edge", seconds), likes=list(taps))


# --- opening --------------------------------------------------------------------------------------


def test_open_starts_the_stream_for_the_actor_at_issue_time() -> None:
    STREAM.given().when(open_stream()).then(
        StreamStarted(**STREAM_FIELDS, user_id=HOST, started_at=at(0)),
    )


def test_a_started_stream_is_live_with_its_settings() -> None:
    state = STREAM.given().when(open_stream(allow_comments=False)).then_state()
    assert (state.stream_id, state.user_id, state.status) == (STREAM_ID, HOST, "live")
    assert state.started_ms == ms(0)
    assert state.allow_comments is False
    assert state.playback_url == "https://cdn/s-1.m3u8"
    assert state.version == 1


@pytest.mark.parametrize("past", [[started()], [started(), ended(60)]], ids=["live", "ended"])
def test_a_stream_id_opens_once(past: list[Any]) -> None:
    STREAM.given(*past).when(open_stream()).then_rejected("stream-exists")


# --- ending ---------------------------------------------------------------------------------------


def test_the_owner_ends_the_stream_with_its_final_stats() -> None:
    STREAM.given(
        started(),
        joined("ann", 10),
        left("ann", 40, watch_time=30),
        joined("bob", 50),
        left("bob", 55, watch_time=5),
        commented("ann", 20, comments=1),
        commented("bob", 52, comments=2),
        liked(30, 17, "k1"),
    ).when(end(125.9, reason="technical_issue")).then(
        StreamEnded(
            ended_at=at(125.9),
            reason="technical_issue",
            duration=125,
            peak_viewer_count=1,
            total_views=2,
            likes=17,
            comments=2,
            gifts=0,
            gift_revenue=0,
        )
    )


def test_ending_sends_every_viewer_away_first_in_user_order() -> None:
    events = STREAM.given(started(), joined("zed", 10), joined("ann", 20)).when(end(80)).events()
    assert events[:2] == [
        ViewerLeft(user_id="ann", left_at=at(80), watch_time=60, reason="stream_ended", viewer_count=0),
        ViewerLeft(user_id="zed", left_at=at(80), watch_time=70, reason="stream_ended", viewer_count=0),
    ]
    the_end = events[2]
    assert isinstance(the_end, StreamEnded)
    assert (the_end.peak_viewer_count, the_end.total_views, the_end.duration) == (2, 2, 80)


def test_watch_time_at_the_end_adds_earlier_visits() -> None:
    given = STREAM.given(started(), joined("ann", 0), left("ann", 30, watch_time=30), joined("ann", 40))
    assert given.when(end(100)).events()[0] == ViewerLeft(
        user_id="ann", left_at=at(100), watch_time=90, reason="stream_ended", viewer_count=0
    )


def test_an_ended_stream_has_no_viewers_left() -> None:
    state = STREAM.given(started(), joined("ann", 10)).when(end(70)).then_state()
    assert state.status == "ended"
    assert state.ended_ms == ms(70)
    assert state.viewers == {}
    assert state.viewer_count == 0
    assert state.watch_time == {"ann": 60}


def test_only_the_broadcaster_ends_the_stream() -> None:
    STREAM.given(started()).when(end(60, actor="ann")).then_rejected("not-stream-owner")


def test_a_stream_ends_once() -> None:
    STREAM.given(started(), ended(60)).when(end(61)).then_rejected("stream-not-live")


def test_ending_an_unknown_stream_is_refused() -> None:
    STREAM.given().when(end(60)).then_rejected("stream-not-found")


# --- joining --------------------------------------------------------------------------------------


def test_joining_an_unknown_stream_is_refused() -> None:
    STREAM.given().when(join("ann", 5)).then_rejected("stream-not-found")


def test_joining_an_ended_stream_is_refused() -> None:
    STREAM.given(started(), ended(60)).when(join("ann", 61)).then_rejected("stream-not-live")


def test_the_first_viewer_joins() -> None:
    STREAM.given(started()).when(join("ann", 5)).then(
        ViewerJoined(
            user_id="ann",
            username="@ann",
            user_profile_image="https://img/ann",
            joined_at=at(5),
            viewer_count=1,
            peak_viewer_count=1,
            total_views=1,
        )
    )


def test_a_second_viewer_raises_count_peak_and_views() -> None:
    [event] = STREAM.given(started(), joined("ann", 5)).when(join("bob", 6)).events()
    assert isinstance(event, ViewerJoined)
    assert (event.viewer_count, event.peak_viewer_count, event.total_views) == (2, 2, 2)


def test_joining_again_while_watching_changes_nothing() -> None:
    STREAM.given(started(), joined("ann", 5)).when(join("ann", 9)).then()


def test_coming_back_is_not_a_new_view() -> None:
    [event] = (
        STREAM.given(started(), joined("ann", 5), left("ann", 9, watch_time=4)).when(join("ann", 20)).events()
    )
    assert isinstance(event, ViewerJoined)
    assert (event.viewer_count, event.peak_viewer_count, event.total_views) == (1, 1, 1)


def test_the_peak_remembers_the_largest_audience() -> None:
    given = STREAM.given(
        started(),
        joined("ann", 1),
        joined("bob", 2),
        joined("cat", 3),
        left("ann", 4, watch_time=3),
        left("bob", 5, watch_time=3),
    )
    assert (given.state.viewer_count, given.state.peak_viewer_count) == (1, 3)
    [event] = given.when(join("dan", 6)).events()
    assert isinstance(event, ViewerJoined)
    assert (event.viewer_count, event.peak_viewer_count, event.total_views) == (2, 3, 4)
    assert given.when(join("dan", 6)).then_state().peak_viewer_count == 3


def test_a_viewer_is_tracked_from_the_moment_they_join() -> None:
    state = STREAM.given(started()).when(join("ann", 5)).then_state()
    assert state.viewers == {"ann": [ms(5), ms(5)]}
    assert state.watch_time == {"ann": 0}


# --- leaving --------------------------------------------------------------------------------------


def test_leaving_reports_the_visit_and_the_audience_left() -> None:
    STREAM.given(started(), joined("ann", 5), joined("bob", 6)).when(leave("ann", 65.5)).then(
        ViewerLeft(user_id="ann", left_at=at(65.5), watch_time=60, reason="left", viewer_count=1)
    )


def test_watch_time_accumulates_over_visits() -> None:
    STREAM.given(started(), joined("ann", 0), left("ann", 30, watch_time=30), joined("ann", 100)).when(
        leave("ann", 110)
    ).then(ViewerLeft(user_id="ann", left_at=at(110), watch_time=40, reason="left", viewer_count=0))


def test_a_viewer_who_left_is_no_longer_counted() -> None:
    state = STREAM.given(started(), joined("ann", 0), joined("bob", 1)).when(leave("ann", 30)).then_state()
    assert set(state.viewers) == {"bob"}
    assert state.watch_time == {"ann": 30, "bob": 0}
    assert (state.viewer_count, state.peak_viewer_count, state.total_views) == (1, 2, 2)


def test_leaving_an_unknown_stream_is_refused() -> None:
    STREAM.given().when(leave("ann", 5)).then_rejected("stream-not-found")


def test_leaving_without_watching_is_refused() -> None:
    STREAM.given(started(), joined("bob", 1)).when(leave("ann", 5)).then_rejected("not-watching")


def test_leaving_after_the_end_is_refused_because_the_end_sent_everyone_away() -> None:
    history = [started(), joined("ann", 1)]
    the_end = STREAM.given(*history).when(end(60)).events()
    STREAM.given(*history, *the_end).when(leave("ann", 61)).then_rejected("not-watching")


# --- heartbeats -----------------------------------------------------------------------------------


def test_a_heartbeat_batch_keeps_each_watchers_latest_beat() -> None:
    STREAM.given(started(), joined("ann", 1), joined("bob", 2)).when(
        heartbeats(40, ("ann", ms(20)), ("ann", ms(35)), ("ann", ms(25)), ("bob", ms(30)))
    ).then(HeartbeatsRecorded(beats={"ann": at(35), "bob": at(30)}, count=4, viewer_count=2))


def test_beats_of_users_not_watching_are_dropped() -> None:
    [event] = (
        STREAM.given(started(), joined("ann", 1))
        .when(heartbeats(40, ("ghost", ms(39)), ("ann", ms(38))))
        .events()
    )
    assert isinstance(event, HeartbeatsRecorded)
    assert event.beats == {"ann": at(38)}
    assert event.viewer_count == 1


def test_a_batch_with_no_watcher_is_refused() -> None:
    STREAM.given(started(), joined("ann", 1)).when(heartbeats(40, ("ghost", ms(39)))).then_rejected(
        "not-watching"
    )


def test_heartbeats_on_an_ended_stream_are_refused() -> None:
    STREAM.given(started(), joined("ann", 1), ended(30)).when(heartbeats(40, ("ann", ms(39)))).then_rejected(
        "stream-not-live"
    )


def test_heartbeats_on_an_unknown_stream_are_refused() -> None:
    STREAM.given().when(heartbeats(40, ("ann", ms(39)))).then_rejected("stream-not-found")


def test_an_older_beat_never_moves_last_seen_back() -> None:
    state = STREAM.given(
        started(),
        joined("ann", 10),
        HeartbeatsRecorded(beats={"ann": at(30)}, count=1, viewer_count=1),
        HeartbeatsRecorded(beats={"ann": at(20), "ghost": at(25)}, count=2, viewer_count=1),
    ).state
    assert state.viewers == {"ann": [ms(10), ms(30)]}


def test_an_empty_heartbeat_batch_is_not_a_command() -> None:
    with pytest.raises(ValidationError):
        heartbeats(40)


# --- comments -------------------------------------------------------------------------------------


def test_a_comment_is_posted_with_an_id_derived_from_the_command() -> None:
    command = comment("ann", 10, text="  what a set!  ")
    STREAM.given(started()).when(command).then(
        CommentPosted(
            comment_id=derive_id(command.command_id, "comment"),
            user_id="ann",
            username="@ann",
            text="what a set!",
            comment_type="text",
            posted_at=at(10),
            comments=1,
        )
    )


def test_the_same_command_posts_the_same_comment_id() -> None:
    given = STREAM.given(started())
    first = given.when(comment("ann", 10)).events()
    again = given.when(comment("ann", 10)).events()
    other = given.when(comment("ann", 11)).events()
    assert first == again
    assert isinstance(first[0], CommentPosted) and isinstance(other[0], CommentPosted)
    assert first[0].comment_id != other[0].comment_id


def test_the_comment_count_goes_up() -> None:
    [event] = STREAM.given(started(), commented("bob", 1, comments=41)).when(comment("ann", 2)).events()
    assert isinstance(event, CommentPosted)
    assert event.comments == 42


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n"])
def test_an_empty_comment_is_refused(text: str) -> None:
    refused = STREAM.given(started()).when(comment("ann", 10, text=text)).then_rejected("invalid-comment")
    assert refused.detail == "a comment cannot be empty"


def test_a_comment_too_long_is_refused() -> None:
    refused = (
        STREAM.given(started()).when(comment("ann", 10, text="x" * 501)).then_rejected("invalid-comment")
    )
    assert refused.detail == "a comment is at most 500 characters"


def test_a_comment_of_exactly_the_limit_is_posted_and_spaces_around_do_not_count() -> None:
    [event] = STREAM.given(started()).when(comment("ann", 10, text=f"  {'x' * 500}  ")).events()
    assert isinstance(event, CommentPosted)
    assert event.text == "x" * 500


def test_the_length_limit_comes_with_the_command() -> None:
    STREAM.given(started()).when(comment("ann", 10, text="eleven char", max_length=10)).then_rejected(
        "invalid-comment"
    )


def test_a_comment_beyond_the_wire_limit_is_not_a_command() -> None:
    with pytest.raises(ValidationError):
        comment("ann", 10, text="x" * 2001)


def test_comments_are_refused_when_the_broadcaster_turned_them_off() -> None:
    STREAM.given(started(allow_comments=False)).when(comment("ann", 10)).then_rejected("comments-disabled")


def test_comments_on_an_ended_stream_are_refused() -> None:
    STREAM.given(started(), ended(60)).when(comment("ann", 61)).then_rejected("stream-not-live")


def test_comments_on_an_unknown_stream_are_refused() -> None:
    STREAM.given().when(comment("ann", 1)).then_rejected("stream-not-found")


def test_one_comment_per_interval_per_user() -> None:
    given = STREAM.given(started(), commented("ann", 10, comments=1))
    refused = given.when(comment("ann", 11.999)).then_rejected("rate-limited")
    assert refused.detail == "one comment per 2 s"
    assert len(given.when(comment("ann", 12)).events()) == 1


def test_the_rate_limit_is_per_user() -> None:
    [event] = STREAM.given(started(), commented("ann", 10, comments=1)).when(comment("bob", 10.5)).events()
    assert isinstance(event, CommentPosted)
    assert event.user_id == "bob"


def test_the_interval_comes_with_the_command() -> None:
    given = STREAM.given(started(), commented("ann", 10, comments=1))
    refused = given.when(comment("ann", 14, min_interval_ms=5000)).then_rejected("rate-limited")
    assert refused.detail == "one comment per 5 s"
    assert len(given.when(comment("ann", 15, min_interval_ms=5000)).events()) == 1


def test_a_posted_comment_starts_the_users_interval() -> None:
    state = STREAM.given(started()).when(comment("ann", 10)).then_state()
    assert state.last_comment_ms == {"ann": ms(10)}
    assert state.comments == 1


def test_an_interval_longer_than_a_minute_holds_while_nobody_else_comments() -> None:
    STREAM.given(started(), commented("ann", 0, comments=1)).when(
        comment("ann", 90, min_interval_ms=120_000)
    ).then_rejected("rate-limited")


def test_an_interval_longer_than_a_minute_is_still_enforced() -> None:
    STREAM.given(
        started(),
        commented("ann", 0, comments=1),
        commented("bob", 61, comments=2),
    ).when(comment("ann", 90, min_interval_ms=120_000)).then_rejected("rate-limited")


# --- likes ----------------------------------------------------------------------------------------


def test_a_like_batch_is_folded_per_user() -> None:
    STREAM.given(started(), liked(1, 10, "k0")).when(
        likes(5, ("k1", "ann", 3), ("k2", "bob", 2), ("k3", "ann", 4))
    ).then(
        LikesRecorded(
            likes={"ann": 7, "bob": 2},
            count=9,
            total_likes=19,
            recorded_at=at(5),
            action_ids=["k1", "k2", "k3"],
        )
    )


def test_a_retried_action_is_counted_once() -> None:
    STREAM.given(started(), liked(1, 3, "k1")).when(likes(5, ("k1", "ann", 3), ("k2", "ann", 1))).then(
        LikesRecorded(likes={"ann": 1}, count=1, total_likes=4, recorded_at=at(5), action_ids=["k2"])
    )


def test_the_same_action_twice_in_one_batch_is_counted_once() -> None:
    [event] = STREAM.given(started()).when(likes(5, ("k1", "ann", 3), ("k1", "ann", 3))).events()
    assert isinstance(event, LikesRecorded)
    assert (event.likes, event.count, event.action_ids) == ({"ann": 3}, 3, ["k1"])


def test_a_batch_of_only_retries_changes_nothing() -> None:
    STREAM.given(started(), liked(1, 2, "k1", "k2")).when(likes(5, ("k1", "ann", 1), ("k2", "bob", 1))).then()


def test_taps_below_one_are_ignored() -> None:
    STREAM.given(started()).when(likes(5, ("k1", "ann", 0), ("k2", "bob", -3))).then()


def test_accepted_action_ids_are_remembered() -> None:
    state = STREAM.given(started()).when(likes(5, ("k1", "ann", 2), ("k2", "bob", 1))).then_state()
    assert list(state.recent_like_ids) == ["k1", "k2"]
    assert state.likes == 3


def test_anonymous_actions_are_never_remembered() -> None:
    state = STREAM.given(started()).when(likes(5, ("anon:1", "ann", 2), ("k1", "bob", 1))).then_state()
    assert list(state.recent_like_ids) == ["k1"]


def test_an_anonymous_action_id_seen_before_still_counts() -> None:
    [event] = STREAM.given(started(), liked(1, 1, "anon:1")).when(likes(5, ("anon:1", "ann", 2))).events()
    assert isinstance(event, LikesRecorded)
    assert (event.likes, event.total_likes) == ({"ann": 2}, 3)


def test_only_the_latest_action_ids_are_remembered() -> None:
    ids = [f"k{i}" for i in range(LIKE_ID_MEMORY + 1)]
    given = STREAM.given(started(), liked(1, len(ids), *ids))
    assert len(given.state.recent_like_ids) == LIKE_ID_MEMORY
    assert next(iter(given.state.recent_like_ids)) == "k1"
    assert len(given.when(likes(5, ("k0", "ann", 1))).events()) == 1
    given.when(likes(5, (ids[-1], "ann", 1))).then()


def test_likes_on_an_ended_stream_are_refused() -> None:
    STREAM.given(started(), ended(60)).when(likes(61, ("k1", "ann", 1))).then_rejected("stream-not-live")


def test_likes_on_an_unknown_stream_are_refused() -> None:
    STREAM.given().when(likes(1, ("k1", "ann", 1))).then_rejected("stream-not-found")


# --- the aggregate as a whole ---------------------------------------------------------------------


def test_a_command_of_another_aggregate_is_refused() -> None:
    start = StartStream(
        command_id="c-start",
        issued_at=at(0),
        actor_id=HOST,
        user_id=HOST,
        stream_id=STREAM_ID,
        username="Hostess",
        title="t",
        category="c",
        ingest_url="rtmp://i",
        playback_url="https://p",
    )
    STREAM.given(started()).when(start).then_rejected("unsupported-command")


def test_every_event_takes_a_sequence_number_even_a_rejection() -> None:
    rejected = StreamCommandRejected(
        command_type="streams.SendComment", reason="rate-limited", detail="slow down"
    )
    state = STREAM.given(started(), joined("ann", 1), rejected).state
    assert state.version == 3
    assert state.viewer_count == 1


def test_stats_summarise_the_stream() -> None:
    state = STREAM.given(
        started(),
        joined("ann", 1),
        joined("bob", 2),
        left("bob", 3, watch_time=1),
        commented("ann", 4, comments=1),
        liked(5, 7, "k1"),
    ).state
    assert state.stats() == {
        "status": "live",
        "viewerCount": 1,
        "peakViewerCount": 2,
        "totalViews": 2,
        "likes": 7,
        "comments": 1,
        "playbackUrl": "https://cdn/s-1.m3u8",
    }


def test_state_survives_a_json_round_trip() -> None:
    state = STREAM.given(
        started(), joined("ann", 1), commented("ann", 4, comments=1), liked(5, 7, "k1", "k2")
    ).state
    restored = StreamState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert restored == state
    assert list(restored.recent_like_ids) == ["k1", "k2"]


# --- silent viewers (spec §3.2: a timer drops viewers silent for more than 2 minutes) ------------


def sweep(seconds: float, silent_s: int = 120, grace_s: int = 0) -> SweepViewers:
    return SweepViewers(
        **base("sweep", "system", seconds), silent_ms=silent_s * 1000, broadcaster_grace_ms=grace_s * 1000
    )


def beat(seconds: float, *users: str) -> HeartbeatsRecorded:
    return HeartbeatsRecorded(beats=dict.fromkeys(users, at(seconds)), count=len(users), viewer_count=0)


def test_a_viewer_silent_for_longer_than_the_limit_is_timed_out() -> None:
    STREAM.given(started(), joined("ann", 0), joined("bob", 10), beat(40, "bob"), beat(100, "ann")).when(
        sweep(185)
    ).then(ViewerLeft(user_id="bob", left_at=at(185), watch_time=30, reason="timed_out", viewer_count=1))


def test_watch_time_of_a_timed_out_viewer_runs_to_the_last_sign_of_life() -> None:
    [left_again] = (
        STREAM.given(
            started(), joined("ann", 0), left("ann", 50, watch_time=50), joined("ann", 60), beat(90, "ann")
        )
        .when(sweep(300))
        .events()
    )
    assert isinstance(left_again, ViewerLeft)
    assert (left_again.watch_time, left_again.reason) == (50 + 30, "timed_out")


def test_silent_viewers_leave_oldest_first_and_the_count_follows() -> None:
    events = (
        STREAM.given(started(), joined("ann", 5), joined("bob", 1), joined("cy", 200))
        .when(sweep(240))
        .events()
    )
    assert [(e.user_id, e.viewer_count) for e in events if isinstance(e, ViewerLeft)] == [
        ("bob", 2),
        ("ann", 1),
    ]


def test_a_viewer_exactly_at_the_limit_stays() -> None:
    STREAM.given(started(), joined("ann", 0)).when(sweep(120)).then()


def test_a_sweep_of_an_ended_or_unknown_stream_changes_nothing() -> None:
    STREAM.given(started(), joined("ann", 0), ended(10)).when(sweep(500)).then()
    STREAM.given().when(sweep(500)).then()


def test_a_timed_out_viewer_is_no_longer_watching() -> None:
    state = STREAM.given(started(), joined("ann", 0), joined("bob", 100)).when(sweep(200)).then_state()
    assert list(state.viewers) == ["bob"] and state.watch_time["ann"] == 0


# --- deleting and pinning comments ---------------------------------------------------------------


def delete(actor: str, seconds: float, comment_id: str = "cm-1", **changes: Any) -> DeleteComment:
    return DeleteComment(**base("delete", actor, seconds), comment_id=comment_id, **changes)


def pin(actor: str, seconds: float, comment_id: str) -> PinComment:
    return PinComment(**base(f"pin-{comment_id}", actor, seconds), comment_id=comment_id)


def pinned(comment_id: str, previous: str | None = None) -> CommentPinned:
    return CommentPinned(comment_id=comment_id, previous_comment_id=previous, pinned_by=HOST, pinned_at=at(1))


def test_the_broadcaster_deletes_a_comment_and_the_fact_names_who_and_why() -> None:
    STREAM.given(started()).when(delete(HOST, 9, reason="spam")).then(
        CommentDeleted(
            comment_id="cm-1", deleted_by=HOST, role="broadcaster", reason="spam", deleted_at=at(9)
        )
    )


def test_the_platform_moderation_team_may_delete_any_comment() -> None:
    [event] = STREAM.given(started()).when(delete("mod-7", 9, platform_moderator=True)).events()
    assert isinstance(event, CommentDeleted) and (event.deleted_by, event.role) == ("mod-7", "platform")


def test_a_viewer_cannot_delete_comments_not_even_their_own() -> None:
    STREAM.given(started()).when(delete("ann", 9)).then_rejected("not-moderator")


def test_comments_of_an_ended_stream_can_still_be_deleted() -> None:
    [event] = STREAM.given(started(), ended(60)).when(delete(HOST, 90)).events()
    assert isinstance(event, CommentDeleted)


def test_pinning_names_the_comment_it_replaces() -> None:
    STREAM.given(started(), pinned("cm-1")).when(pin(HOST, 5, "cm-2")).then(
        CommentPinned(comment_id="cm-2", previous_comment_id="cm-1", pinned_by=HOST, pinned_at=at(5))
    )


def test_pinning_the_pinned_comment_again_changes_nothing() -> None:
    STREAM.given(started(), pinned("cm-1")).when(pin(HOST, 5, "cm-1")).then()


def test_only_the_broadcaster_pins_and_only_while_live() -> None:
    STREAM.given(started()).when(pin("ann", 5, "cm-1")).then_rejected("not-stream-owner")
    STREAM.given(started(), ended(60)).when(pin(HOST, 61, "cm-1")).then_rejected("stream-not-live")


def test_deleting_the_pinned_comment_unpins_it() -> None:
    deleted = CommentDeleted(comment_id="cm-1", deleted_by=HOST, role="broadcaster", deleted_at=at(3))
    STREAM.given(started(), pinned("cm-1"), deleted).when(pin(HOST, 5, "cm-2")).then(
        CommentPinned(comment_id="cm-2", previous_comment_id=None, pinned_by=HOST, pinned_at=at(5))
    )


def unpin(actor: str, seconds: float, comment_id: str) -> UnpinComment:
    return UnpinComment(**base(f"unpin-{comment_id}", actor, seconds), comment_id=comment_id)


def test_the_broadcaster_unpins_the_pinned_comment_and_then_nothing_is_pinned() -> None:
    unpinned = CommentUnpinned(comment_id="cm-1", unpinned_by=HOST, unpinned_at=at(5))
    STREAM.given(started(), pinned("cm-1")).when(unpin(HOST, 5, "cm-1")).then(unpinned)
    # nothing pinned now: pinning names no comment it replaces
    STREAM.given(started(), pinned("cm-1"), unpinned).when(pin(HOST, 6, "cm-2")).then(
        CommentPinned(comment_id="cm-2", previous_comment_id=None, pinned_by=HOST, pinned_at=at(6))
    )


def test_unpinning_a_comment_that_is_not_the_pinned_one_changes_nothing() -> None:
    STREAM.given(started(), pinned("cm-1")).when(unpin(HOST, 5, "cm-2")).then()
    STREAM.given(started()).when(unpin(HOST, 5, "cm-1")).then()


def test_only_the_broadcaster_unpins_also_after_the_stream_ended() -> None:
    STREAM.given(started(), pinned("cm-1")).when(unpin("ann", 5, "cm-1")).then_rejected("not-stream-owner")
    [event] = STREAM.given(started(), pinned("cm-1"), ended(60)).when(unpin(HOST, 61, "cm-1")).events()
    assert isinstance(event, CommentUnpinned)


# --- changing a live stream, and who may join ------------------------------------------------


def update(seconds: float, actor: str = HOST, **fields: Any) -> UpdateStream:
    return UpdateStream(**base("update", actor, seconds), **fields)


def updated(seconds: float, **changes: Any) -> StreamUpdated:
    return StreamUpdated(changes=changes, updated_at=at(seconds))


def test_the_broadcaster_changes_only_what_differs() -> None:
    STREAM.given(started()).when(update(5, title="New", allow_comments=True, slow_mode_seconds=10)).then(
        updated(5, title="New", slow_mode_seconds=10)  # comments were allowed already
    )


def test_an_update_that_changes_nothing_yields_nothing() -> None:
    STREAM.given(started(), updated(3, slow_mode_seconds=10)).when(update(5, slow_mode_seconds=10)).then()


def test_only_the_broadcaster_updates_and_only_while_live() -> None:
    STREAM.given(started()).when(update(5, actor="ann", title="Mine")).then_rejected("not-stream-owner")
    STREAM.given(started(), ended(9)).when(update(10, title="Late")).then_rejected("stream-not-live")


def test_turning_comments_off_refuses_comments() -> None:
    STREAM.given(started(), updated(3, allow_comments=False)).when(comment("ann", 5)).then_rejected(
        "comments-disabled"
    )


def test_the_streams_slow_mode_is_longer_than_the_platform_default() -> None:
    given = STREAM.given(started(), updated(1, slow_mode_seconds=30), commented("ann", 10, comments=1))
    refused = given.when(comment("ann", 25)).then_rejected("rate-limited")
    assert "30 s" in refused.detail
    assert len(given.when(comment("ann", 41)).events()) == 1


def test_slow_mode_off_falls_back_to_the_platform_default() -> None:
    given = STREAM.given(
        started(),
        updated(1, slow_mode_seconds=30),
        updated(2, slow_mode_seconds=0),
        commented("ann", 10, comments=1),
    )
    assert len(given.when(comment("ann", 13)).events()) == 1


def test_a_private_stream_admits_only_its_broadcaster() -> None:
    STREAM.given(started(privacy="private")).when(join("ann", 5)).then_rejected("private-stream")
    assert len(STREAM.given(started(privacy="private")).when(join(HOST, 5)).events()) == 1
    STREAM.given(started(), updated(3, privacy="private")).when(join("ann", 5)).then_rejected(
        "private-stream"
    )


def test_a_private_stream_admits_the_access_policys_insiders() -> None:
    """Allowed users, stream moderators and platform staff, as api/access.py admits them."""
    private = STREAM.given(
        started(privacy="private", allowed_user_ids=["ann"]), ModeratorAdded(user_id="mod", added_at=at(1))
    )
    assert len(private.when(join("ann", 5)).events()) == 1
    assert len(private.when(join("mod", 5)).events()) == 1
    assert len(private.when(join("staff", 5).model_copy(update={"platform_moderator": True})).events()) == 1
    private.when(join("bob", 5)).then_rejected("private-stream")


def test_a_followers_only_age_restricted_stream_lets_its_moderators_and_staff_watch() -> None:
    """Moderators and platform staff pass the followers and age rules, as api/access.py lets them read;
    a follower of unknown age and a stranger are refused."""
    world = STREAM.given(
        started(privacy="followers", is_age_restricted=True), ModeratorAdded(user_id="mod", added_at=at(1))
    )
    assert len(world.when(join("mod", 5)).events()) == 1
    assert len(world.when(join("staff", 5).model_copy(update={"platform_moderator": True})).events()) == 1
    world.when(join("bob", 5)).then_rejected("followers-only")
    fan = join("fan", 5).model_copy(update={"follows_broadcaster": True})
    world.when(fan).then_rejected("age-restricted")


def test_an_age_restricted_stream_refuses_minors_and_unknown_ages() -> None:
    restricted = STREAM.given(started(is_age_restricted=True))
    restricted.when(join("kid", 5).model_copy(update={"age": 17})).then_rejected("age-restricted")
    restricted.when(join("anon", 5)).then_rejected("age-restricted")
    assert len(restricted.when(join("adult", 5).model_copy(update={"age": 18})).events()) == 1


# --- a broadcaster who vanished --------------------------------------------------------------------


def test_the_broadcasters_app_heartbeats_too() -> None:
    [event] = STREAM.given(started()).when(heartbeats(30, (HOST, ms(30)))).events()
    assert isinstance(event, HeartbeatsRecorded) and list(event.beats) == [HOST]


def test_a_stream_whose_broadcaster_went_silent_past_the_grace_period_ends() -> None:
    events = (
        STREAM.given(started(), joined("ann", 10), beat(100, HOST)).when(sweep(401, grace_s=300)).events()
    )
    assert [type(e).__name__ for e in events] == ["ViewerLeft", "StreamEnded"]
    assert isinstance(events[-1], StreamEnded) and events[-1].reason == "broadcaster_lost"
    assert isinstance(events[0], ViewerLeft) and events[0].reason == "stream_ended"


def test_a_broadcaster_heard_within_the_grace_period_keeps_the_stream() -> None:
    STREAM.given(started(), beat(100, HOST)).when(sweep(400, grace_s=300)).then()
    STREAM.given(started()).when(sweep(290, grace_s=300)).then()  # counted from the start


def test_without_a_grace_period_a_silent_broadcaster_never_ends_the_stream() -> None:
    STREAM.given(started()).when(sweep(100_000)).then()


def test_the_stored_form_splits_and_joins_back_to_the_same_state() -> None:
    from spaktok.commands.parts import flattened, part_count
    from spaktok.commands.stream_state import join as join_parts
    from spaktok.commands.stream_state import split

    state = STREAM.given(started(), *(joined(f"v{i}", i) for i in range(4_500)), liked(5, 3, "k1")).state
    main, grouped = split(state)
    contents = flattened(grouped)
    assert part_count(4_500) == 4 and len([n for n in contents if n.startswith("viewers-")]) == 4
    restored = join_parts(orjson.loads(orjson.dumps(main)), orjson.loads(orjson.dumps(contents)))
    assert restored == state
    assert part_count(0) == 1 and part_count(2_000) == 1 and part_count(100_000) == 64


def test_gifters_stored_in_one_part_before_they_were_split_join_back() -> None:
    from spaktok.commands.stream_state import join as join_parts
    from spaktok.commands.stream_state import split

    state = STREAM.given(started()).state
    from spaktok.commands.parted_map import PartedMap
    from spaktok.commands.parts import flattened

    gifters = PartedMap({"ann": [5, 1, 1], "bob": [9, 2, 3]})
    state = replace(state, gifting=replace(state.gifting, gifters=gifters))
    main, grouped = split(state)
    assert list(flattened(grouped)) == ["gifters-1-0"]
    assert join_parts(main, {"gifters": dict(state.gifters.items())}) == state


# --- bans, timeouts and the stream's moderators ------------------------------------------------


def ban(actor: str, seconds: float, target: str = "troll", **changes: Any) -> BanUser:
    return BanUser(**base(f"ban-{target}", actor, seconds), target_user_id=target, **changes)


def banned(target: str, seconds: float, by: str = HOST) -> UserBanned:
    return UserBanned(
        user_id=target,
        by=by,
        role="broadcaster",
        banned_at=at(seconds),
        comments_deleted_since=at(seconds - 300),
    )


def mute(actor: str, seconds: float, duration: int, target: str = "troll") -> TimeoutUser:
    return TimeoutUser(**base(f"mute-{target}", actor, seconds), target_user_id=target, duration_s=duration)


def muted(target: str, seconds: float, duration: int) -> UserTimedOut:
    return UserTimedOut(
        user_id=target,
        by=HOST,
        role="broadcaster",
        duration=duration,
        until=at(seconds + duration),
        timed_out_at=at(seconds),
    )


def told(command: Any, kind: str, *recipients: str) -> ModerationNotified:
    """The notice a moderation command sends to the people concerned."""
    return ModerationNotified(
        notification_id=derive_id(command.command_id, kind),
        kind=kind,  # type: ignore[arg-type]
        channel_id=HOST,
        stream_id=STREAM_ID,
        title="Friday night",
        actor_name="Hostess",
        recipients=list(recipients),
        sent_at=command.issued_at,
    )


def test_a_ban_removes_a_watching_user_with_their_watch_time_and_tells_them() -> None:
    command = ban(HOST, 400, reason="spam")
    STREAM.given(started(), joined("troll", 100)).when(command).then(
        UserBanned(
            user_id="troll",
            by=HOST,
            role="broadcaster",
            reason="spam",
            banned_at=at(400),
            comments_deleted_since=at(100),
        ),
        told(command, "banned", "troll"),
        ViewerLeft(user_id="troll", left_at=at(400), watch_time=300, reason="banned", viewer_count=0),
    )


def test_a_banned_user_cannot_join_comment_or_like() -> None:
    given = STREAM.given(started(), banned("troll", 10))
    given.when(join("troll", 20)).then_rejected("user-banned")
    given.when(comment("troll", 20)).then_rejected("user-banned")
    given.when(likes(20, ("k1", "troll", 5))).then()


def test_unbanning_restores_access() -> None:
    given = STREAM.given(started(), banned("troll", 10))
    unban = UnbanUser(**base("unban", HOST, 20), target_user_id="troll")
    given.when(unban).then(
        UserUnbanned(user_id="troll", by=HOST, role="broadcaster", unbanned_at=at(20)),
        told(unban, "unbanned", "troll"),
    )
    back = STREAM.given(
        started(),
        banned("troll", 10),
        UserUnbanned(user_id="troll", by=HOST, role="broadcaster", unbanned_at=at(20)),
    )
    assert len(back.when(join("troll", 30)).events()) == 1


def test_who_may_moderate() -> None:
    STREAM.given(started()).when(ban("ann", 5)).then_rejected("not-moderator")
    STREAM.given(started()).when(ban("ann", 5, target=HOST)).then_rejected("not-moderator")
    STREAM.given(started()).when(ban(HOST, 5, target=HOST)).then_rejected("cannot-moderate-broadcaster")
    with_mod = STREAM.given(started(), ModeratorAdded(user_id="mod", added_at=at(1)))
    [event, *_] = with_mod.when(ban("mod", 5)).events()
    assert isinstance(event, UserBanned) and event.role == "moderator"
    [event, *_] = STREAM.given(started()).when(ban("team", 5, platform_moderator=True)).events()
    assert isinstance(event, UserBanned) and event.role == "platform"


def test_only_the_broadcaster_names_moderators() -> None:
    add = AddModerator(**base("add-mod", HOST, 5), target_user_id="mod")
    STREAM.given(started()).when(add).then(
        ModeratorAdded(user_id="mod", added_at=at(5)), told(add, "moderator_added", "mod")
    )
    STREAM.given(started()).when(add.model_copy(update={"actor_id": "ann"})).then_rejected("not-stream-owner")


def test_a_timed_out_user_watches_but_cannot_comment_until_it_expires() -> None:
    given = STREAM.given(started(), joined("troll", 1), muted("troll", 10, 60))
    refused = given.when(comment("troll", 69)).then_rejected("timed-out")
    assert "1 s" in refused.detail
    assert len(given.when(comment("troll", 70)).events()) == 1  # exactly at the end: allowed
    assert given.when(heartbeats(30, ("troll", ms(30)))).events()


def test_a_new_timeout_replaces_the_old_one() -> None:
    shorter = STREAM.given(started(), muted("troll", 10, 600), muted("troll", 20, 5))
    assert len(shorter.when(comment("troll", 26)).events()) == 1
    STREAM.given(started()).when(mute(HOST, 10, 30)).then(muted("troll", 10, 30))


def lift(actor: str, seconds: float, target: str = "troll", **fields: Any) -> LiftTimeout:
    return LiftTimeout(**base(f"lift-{target}", actor, seconds), target_user_id=target, **fields)


def test_lifting_a_timeout_lets_the_user_comment_at_once() -> None:
    given = STREAM.given(started(), joined("troll", 1), muted("troll", 10, 600))
    lifted = TimeoutLifted(user_id="troll", by=HOST, role="broadcaster", lifted_at=at(20))
    given.when(lift(HOST, 20)).then(lifted)
    after = STREAM.given(started(), joined("troll", 1), muted("troll", 10, 600), lifted)
    assert len(after.when(comment("troll", 21)).events()) == 1


def test_a_timeout_that_is_over_or_was_never_given_has_nothing_to_lift() -> None:
    STREAM.given(started(), muted("troll", 10, 30)).when(lift(HOST, 40)).then()
    STREAM.given(started()).when(lift(HOST, 40)).then()


def test_who_may_lift_a_timeout() -> None:
    given = STREAM.given(started(), muted("troll", 10, 600))
    given.when(lift("ann", 20)).then_rejected("not-moderator")
    [event] = given.when(lift("team", 20, platform_moderator=True)).events()
    assert isinstance(event, TimeoutLifted) and event.role == "platform"


# --- reports and automatic suspension (spec §8.2) ------------------------------------------------


def report(
    reporter: str, seconds: float, flag_at: int = 2, suspend_at: int = 3, window_s: int = 600
) -> ReportStream:
    return ReportStream(
        **base(f"report-{reporter}", reporter, seconds),
        reason="spam",
        flag_at=flag_at,
        suspend_at=suspend_at,
        window_s=window_s,
    )


def reported(reporter: str, seconds: float, count: int, window_s: int = 600) -> StreamReported:
    return StreamReported(
        reporter_id=reporter,
        reason="spam",
        reporters_in_window=count,
        window_s=window_s,
        reported_at=at(seconds),
    )


def test_a_report_is_counted_once_per_reporter_within_the_window() -> None:
    STREAM.given(started()).when(report("ann", 10)).then(reported("ann", 10, 1))
    STREAM.given(started(), reported("ann", 10, 1)).when(report("ann", 20)).then()
    [again] = STREAM.given(started(), reported("ann", 10, 1)).when(report("ann", 700)).events()
    assert isinstance(again, StreamReported) and again.reporters_in_window == 1  # the old one expired


def test_enough_distinct_reporters_flag_the_stream_and_tell_the_moderation_team() -> None:
    events = STREAM.given(started(), reported("ann", 10, 1)).when(report("bob", 20)).events()
    assert [type(e).__name__ for e in events] == ["StreamReported", "StreamFlagged", "ModerationNotified"]
    notice = events[-1]
    assert isinstance(notice, ModerationNotified)
    assert (notice.kind, notice.recipients) == ("stream_flagged", ["role:moderation"])


def test_more_reporters_suspend_and_end_the_stream() -> None:
    given = STREAM.given(
        started(),
        joined("fan", 1),
        reported("ann", 10, 1),
        reported("bob", 20, 2),
        StreamFlagged(reporters_in_window=2, flagged_at=at(20)),
    )
    events = given.when(report("cy", 30)).events()
    assert [type(e).__name__ for e in events] == [
        "StreamReported",
        "StreamSuspended",
        "ModerationNotified",
        "ViewerLeft",
        "StreamEnded",
    ]
    assert isinstance(events[-1], StreamEnded) and events[-1].reason == "suspended"
    notice = events[2]
    assert isinstance(notice, ModerationNotified) and notice.recipients == [HOST, "role:moderation"]


def test_the_broadcaster_cannot_report_their_own_stream() -> None:
    STREAM.given(started()).when(report(HOST, 5)).then_rejected("cannot-report-own-stream")


def test_reporters_outside_the_window_are_forgotten() -> None:
    state = STREAM.given(started(), reported("ann", 10, 1), reported("bob", 700, 1)).state
    assert list(state.reporters) == ["bob"]


def test_copy_with_is_dataclasses_replace_for_the_stream_states() -> None:
    from spaktok.commands.stream.state import PARTS, copy_with

    state = STREAM.given(started()).state
    assert copy_with(state, title="new", version=9) == replace(state, title="new", version=9)
    for part in PARTS:
        assert copy_with(getattr(state, part)) == getattr(state, part)
    with pytest.raises(TypeError):
        copy_with(state, no_such_field=1)
