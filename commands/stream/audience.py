"""The stream's audience: who may watch, joins and leaves, heartbeats, watch time and the peak."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from spaktok.commands.base import Rejection
from spaktok.commands.parted_map import PartedMap
from spaktok.commands.stream.base import Deciders, require_live, require_stream
from spaktok.commands.stream.state import Audience, StreamState, copy_with, millis
from spaktok.commands.stream_analytics import age_bucket, longest_kept
from spaktok.commands.streams import (
    JoinStream,
    JoinViewers,
    LeaveStream,
    RecordHeartbeats,
    SweepViewers,
    TimeOutViewers,
    ViewerFacts,
)
from spaktok.events.base import Event
from spaktok.events.streams import (
    HeartbeatsRecorded,
    StreamStarted,
    ViewerJoined,
    ViewerLeft,
    ViewersRefused,
)

ADULT_AGE = 18


def _join(command: JoinStream, state: StreamState) -> list[Event]:
    require_live(state)
    audience = state.audience
    if command.actor_id in audience.viewers:
        return []  # already watching: joining again changes nothing
    _admit_viewer(command.actor_id, command, state)
    count = audience.viewer_count + 1
    return [_joined_event(command.actor_id, command, command.issued_at, state, count, audience.total_views)]


def _join_viewers(command: JoinViewers, state: StreamState) -> list[Event]:
    """An edge batch of joins: each viewer decided in order as their own `JoinStream` would be (so
    the counts are those of the joins one by one); those refused are named in one `ViewersRefused`."""
    require_live(state)
    audience = state.audience
    count, total = audience.viewer_count, audience.total_views
    events: list[Event] = []
    joining: set[str] = set()
    refused: dict[str, tuple[str, str]] = {}
    for viewer in command.viewers:
        user = viewer.user_id
        if user in audience.viewers or user in joining:
            continue  # already watching
        try:
            _admit_viewer(user, viewer, state)
        except Rejection as refusal:
            refused[user] = (refusal.reason, refusal.detail)
            continue
        joining.add(user)
        count += 1
        joined = _joined_event(user, viewer, command.issued_at, state, count, total)
        total = joined.total_views
        events.append(joined)
    if refused:
        events.append(ViewersRefused(refused=refused))
    return events


def _joined_event(
    user: str, facts: ViewerFacts, at: datetime, state: StreamState, count: int, total_views: int
) -> ViewerJoined:
    """`user` joins as the `count`th viewer; a first visit counts once more in the total views."""
    audience = state.audience
    first_visit = user not in audience.watch_time
    return ViewerJoined(
        user_id=user,
        username=facts.username,
        user_profile_image=facts.user_profile_image,
        joined_at=at,
        viewer_count=count,
        peak_viewer_count=max(audience.peak_viewer_count, count),
        total_views=total_views + (1 if first_visit else 0),
        country=facts.country,
        age_bucket=age_bucket(facts.age),
    )


def _admit_viewer(actor: str, facts: ViewerFacts, state: StreamState) -> None:
    """The access policy's rules for watching (api/access.py), in its order: the owner and platform
    staff pass; a private stream admits its moderators, guests and allowed users only; moderators and
    guests pass; then bans, followers-only and age apply."""
    trusted = facts.platform_moderator or actor == state.user_id
    crew = state.moderation.moderates(actor) or actor in state.stage.guests
    if state.privacy == "private" and not (trusted or crew or actor in state.allowed_user_ids):
        raise Rejection("private-stream", "this stream is private")
    if trusted or crew:
        return
    if actor in state.moderation.banned:
        raise Rejection("user-banned", "you are banned from this stream")
    if state.privacy == "followers" and not facts.follows_broadcaster:
        raise Rejection("followers-only", "follow the broadcaster to watch this stream")
    if state.is_age_restricted and (facts.age is None or facts.age < ADULT_AGE):
        raise Rejection("age-restricted", f"this stream is for viewers aged {ADULT_AGE} or over")


def watching(state: StreamState, user_id: str) -> bool:
    """Whether `user_id` watches the stream now. An ended stream's viewers all left at its end,
    even those a big end has not let go yet (`lifecycle.ending`): their leave is the end's."""
    return state.status == "live" and user_id in state.audience.viewers


def _leave(command: LeaveStream, state: StreamState) -> list[Event]:
    require_stream(state)
    if not watching(state, command.actor_id):
        raise Rejection("not-watching", "you are not watching this stream")
    return [leaving(state, command.actor_id, command.issued_at, "left", state.viewer_count - 1)]


def _heartbeats(command: RecordHeartbeats, state: StreamState) -> list[Event]:
    require_live(state)
    beats: dict[str, datetime] = {}
    for user_id, at_ms in command.beats:
        if user_id in state.audience.viewers or user_id == state.user_id:  # the broadcaster's app beats too
            latest = max(at_ms, int(beats[user_id].timestamp() * 1000)) if user_id in beats else at_ms
            beats[user_id] = datetime.fromtimestamp(latest / 1000, UTC)
    if not beats:
        raise Rejection("not-watching", "none of these users is watching this stream")
    return [HeartbeatsRecorded(beats=beats, count=len(command.beats), viewer_count=state.viewer_count)]


def leaving(
    state: StreamState,
    user_id: str,
    left_at: datetime,
    reason: Literal["left", "stream_ended", "timed_out", "banned"],
    viewer_count: int,
    last_seen_ms: int | None = None,
) -> ViewerLeft:
    """A viewer's departure: past visits' watch time plus this visit's, from joining to leaving
    (or to `last_seen_ms`, their last sign of life, when they are timed out)."""
    end_ms = millis(left_at) if last_seen_ms is None else last_seen_ms
    visit = max(0, end_ms - state.audience.viewers[user_id][0]) // 1000
    return ViewerLeft(
        user_id=user_id,
        left_at=left_at,
        watch_time=state.audience.watch_time.get(user_id, 0) + visit,
        reason=reason,
        viewer_count=viewer_count,
    )


def silent_viewers_leave(command: SweepViewers, state: StreamState) -> list[Event]:
    """Viewers not heard from (join or heartbeat) for longer than `silent_ms` leave, oldest first.

    Their watch time for this visit runs to their last sign of life, not to the sweep. A hot stream's
    viewers send their heartbeats to its shards, which sweep them (`_time_out`): here they would all
    look silent.
    """
    if state.like_shards:
        return []
    silent_before = millis(command.issued_at) - command.silent_ms
    silent = [(seen[1], user_id) for user_id, seen in last_seen_before(state.audience.viewers, silent_before)]
    return _timed_out(state, command.issued_at, silent)


def last_seen_before(viewers: PartedMap, before_ms: int) -> list[tuple[str, list[int]]]:
    """The viewers (user, [joined ms, last seen ms]) last seen before `before_ms`: the sweep's pass,
    the stream's and its shards' (`stream_shard_decide._sweep`). It reads the map's parts as plain
    dicts, half the time of a pass through its `items()` (bench/shard_sweep.py)."""
    return [
        (user_id, seen)
        for part in viewers.part_views()
        for user_id, seen in part.items()
        if seen[1] < before_ms
    ]


def _time_out(command: TimeOutViewers, state: StreamState) -> list[Event]:
    """A hot stream's shards found these visits silent: each viewer still on that very visit (joined
    at the same millisecond) leaves, watch time to their last sign of life, oldest first. After the
    end it changes nothing: the end let everyone leave."""
    require_stream(state)
    if state.status != "live":
        return []
    viewers = state.audience.viewers
    silent = [
        (last_seen, user_id)
        for user_id, (joined_ms, last_seen) in command.visits.items()
        if user_id in viewers and viewers[user_id][0] == joined_ms
    ]
    return _timed_out(state, command.issued_at, silent)


def _timed_out(state: StreamState, at: datetime, silent: list[tuple[int, str]]) -> list[Event]:
    """`ViewerLeft(timed_out)` for each (last seen, user), oldest first."""
    count = state.viewer_count
    events: list[Event] = []
    for last_seen, user_id in sorted(silent):
        count -= 1
        events.append(leaving(state, user_id, at, "timed_out", count, last_seen_ms=last_seen))
    return events


DECIDERS: Deciders = {
    JoinStream: _join,
    JoinViewers: _join_viewers,
    LeaveStream: _leave,
    RecordHeartbeats: _heartbeats,
    TimeOutViewers: _time_out,
}


def _opened(audience: Audience, event: StreamStarted) -> Audience:
    return copy_with(audience, longest=())  # nobody has watched yet: the longest are kept from now


def _joined(audience: Audience, event: ViewerJoined) -> Audience:
    at = millis(event.joined_at)
    audience.viewers[event.user_id] = [at, at]
    longest = audience.longest
    if event.user_id not in audience.watch_time:  # a first visit: a watch time of 0 from now
        audience.watch_time[event.user_id] = 0
        longest = longest_kept(longest, event.user_id, 0)
    peak = max(audience.peak_viewer_count, len(audience.viewers))
    return copy_with(audience, peak_viewer_count=peak, longest=longest)


def _left(audience: Audience, event: ViewerLeft) -> Audience:
    audience.viewers.pop(event.user_id, None)
    audience.watch_time[event.user_id] = event.watch_time
    longest = longest_kept(audience.longest, event.user_id, event.watch_time)
    return audience if longest is audience.longest else copy_with(audience, longest=longest)


def _beaten(audience: Audience, event: HeartbeatsRecorded) -> Audience:
    viewers = audience.viewers
    for user_id, beat_at in event.beats.items():
        seen = viewers.get(user_id)
        if seen is not None:
            viewers[user_id] = [seen[0], max(seen[1], millis(beat_at))]
    return audience


# how each audience event changes a thawed Audience: the maps in place, the rest replaced
FOLDS: dict[type[Event], Callable[[Audience, Any], Audience]] = {
    StreamStarted: _opened,
    ViewerJoined: _joined,
    ViewerLeft: _left,
    HeartbeatsRecorded: _beaten,
}
