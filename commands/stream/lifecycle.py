"""The stream's lifecycle: opening, settings, the broadcaster's signs of life, and the ending every
context may call for (`ending`: the owner ends it, the broadcaster is lost, a suspension)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from spaktok.commands.base import Rejection
from spaktok.commands.stream.audience import leaving, silent_viewers_leave
from spaktok.commands.stream.base import Deciders, require_live
from spaktok.commands.stream.state import StreamState, millis
from spaktok.commands.streams import EndStream, OpenStream, ReleaseViewers, SweepViewers, UpdateStream
from spaktok.events.base import Event
from spaktok.events.streams import (
    BattleUnlinked,
    HeartbeatsRecorded,
    StreamEnded,
    StreamStarted,
    StreamUpdated,
    ViewerLeft,
)


def _open(command: OpenStream, state: StreamState) -> list[Event]:
    if state.status != "none":
        raise Rejection("stream-exists", "a stream with this id was already started")
    fields = command.model_dump(exclude={"type", "command_id", "correlation_id", "issued_at", "actor_id"})
    return [StreamStarted(**fields, user_id=command.actor_id, started_at=command.issued_at)]


def _end(command: EndStream, state: StreamState) -> list[Event]:
    require_live(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster can end this stream")
    return ending(state, command.issued_at, command.reason)


LEAVES_PER_DECISION = 2_000  # leaves one decision of an end may hold (~60 µs of the worker's each)


def ending(state: StreamState, now: datetime, reason: str) -> list[Event]:
    """Viewers leave with their watch time, then the final statistics are frozen.

    Up to `LEAVES_PER_DECISION` viewers, all of them in this decision. A bigger audience would hold
    the worker for as long as its leaves take (4.2 s at 100,000 viewers, a minute at a million:
    every other aggregate of that worker waits, and a worker silent past its session loses its
    partitions mid-way), so the stream lets `LEAVES_PER_DECISION` go, ends, and lets the others go
    as many at a time after the end, a part of its viewer map after another (`ReleaseViewers`),
    each at the end's time: the same leaves and watch times (docs/decisions.md "A big stream's rare
    moments"). The end is last either way, so it is in the tail of the decision its caller is told.
    """
    if state.viewer_count <= LEAVES_PER_DECISION:
        leaves: list[Event] = [
            leaving(state, user_id, now, "stream_ended", 0) for user_id in sorted(state.audience.viewers)
        ]
    else:
        now = datetime.fromtimestamp(millis(now) / 1000, UTC)  # as later releases read it back
        leaves = _next_leaves(state, now, 0)
    battle: list[Event] = []
    if state.pk.pk_battle_id:  # a battle cannot go on without this side: it closes, with the scores so far
        battle.append(BattleUnlinked(battle_id=state.pk.pk_battle_id, reason="stream_ended", unlinked_at=now))
    return [*leaves, *battle, _ended(state, now, reason)]


def _ended(state: StreamState, now: datetime, reason: str) -> StreamEnded:
    return StreamEnded(
        ended_at=now,
        reason=reason,
        duration=max(0, millis(now) - state.started_ms) // 1000,
        peak_viewer_count=state.audience.peak_viewer_count,
        total_views=state.total_views,
        likes=state.chat.likes,
        comments=state.chat.comments,
        gifts=state.gifting.gifts,
        gift_revenue=state.gifting.gift_revenue,
    )


def _next_leaves(state: StreamState, left_at: datetime, first_part: int) -> list[Event]:
    """The leaves of the first `LEAVES_PER_DECISION` viewers, by user id, of the first part of the
    viewer map from `first_part` that holds any: the same viewers whatever order the map is loaded
    in (a worker deciding a release again after a crash takes the ones it published)."""
    viewers = state.audience.viewers
    for index in range(first_part, viewers.cut):
        users = viewers.part_keys(index)
        if users:
            return [
                leaving(state, user_id, left_at, "stream_ended", 0) for user_id in users[:LEAVES_PER_DECISION]
            ]
    return []


def _release(command: ReleaseViewers, state: StreamState) -> list[Event]:
    """An ended stream's next part of its audience leaves, at the end's time; nothing once all left
    (a repeated or late command)."""
    if state.status != "ended":
        return []
    ended_at = datetime.fromtimestamp(state.ended_ms / 1000, UTC)
    return _next_leaves(state, ended_at, state.release_part)


def _sweep(command: SweepViewers, state: StreamState) -> list[Event]:
    """A stream whose broadcaster was not heard from for `broadcaster_grace_ms` ends; otherwise
    viewers not heard from for `silent_ms` leave (`audience.silent_viewers_leave`)."""
    if state.status != "live":
        return []
    now_ms = millis(command.issued_at)
    # video arriving from the media server is the broadcaster's sign of life too
    owner_seen = now_ms if state.media.ingest == "live" else max(state.owner_seen_ms, state.started_ms)
    if command.broadcaster_grace_ms and now_ms - owner_seen > command.broadcaster_grace_ms:
        return ending(state, command.issued_at, "broadcaster_lost")
    return silent_viewers_leave(command, state)


UPDATABLE = (
    "title",
    "category",
    "tags",
    "allow_comments",
    "allow_gifts",
    "privacy",
    "slow_mode_seconds",
    "allowed_user_ids",
)


def _update(command: UpdateStream, state: StreamState) -> list[Event]:
    require_live(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster can change the stream")
    changes = {name: getattr(command, name) for name in UPDATABLE if getattr(command, name) is not None}
    if "slow_mode_seconds" in changes and changes["slow_mode_seconds"] * 1000 == state.slow_mode_ms:
        del changes["slow_mode_seconds"]
    for name, current in (("allow_comments", state.allow_comments), ("privacy", state.privacy)):
        if changes.get(name) == current:
            del changes[name]
    if "allowed_user_ids" in changes and tuple(changes["allowed_user_ids"]) == state.allowed_user_ids:
        del changes["allowed_user_ids"]
    if not changes:
        return []
    return [StreamUpdated(changes=changes, updated_at=command.issued_at)]


DECIDERS: Deciders = {
    OpenStream: _open,
    EndStream: _end,
    UpdateStream: _update,
    SweepViewers: _sweep,
    ReleaseViewers: _release,
}


def _started(state: StreamState, event: StreamStarted) -> dict[str, Any]:
    return {
        "stream_id": event.stream_id,
        "user_id": event.user_id,
        "status": "live",
        "started_ms": millis(event.started_at),
        "allow_comments": event.allow_comments,
        "playback_url": event.playback_url,
        "privacy": event.privacy,
        "is_age_restricted": event.is_age_restricted,
        "title": event.title,
        "username": event.username,
        "allow_gifts": event.allow_gifts,
        "is_premium": event.is_premium,
        "is_recorded": event.is_recorded,
        "allowed_user_ids": tuple(event.allowed_user_ids),
        "like_shards": event.like_shards,
    }


def _stream_ended(state: StreamState, event: StreamEnded) -> dict[str, Any]:
    return {"status": "ended", "ended_ms": millis(event.ended_at)}


def _viewer_left(state: StreamState, event: ViewerLeft) -> dict[str, Any]:
    """After the end, a leave is a released one: the next release starts from its part (the parts
    before it are empty)."""
    if state.status != "ended":
        return {}
    return {"release_part": state.audience.viewers.part_of(event.user_id)}


def _updated(state: StreamState, event: StreamUpdated) -> dict[str, Any]:
    changes = event.changes
    return {
        "title": changes.get("title", state.title),
        "allow_comments": changes.get("allow_comments", state.allow_comments),
        "allow_gifts": changes.get("allow_gifts", state.allow_gifts),
        "privacy": changes.get("privacy", state.privacy),
        "slow_mode_ms": changes.get("slow_mode_seconds", state.slow_mode_ms // 1000) * 1000,
        "allowed_user_ids": tuple(changes.get("allowed_user_ids", state.allowed_user_ids)),
    }


def _beaten(state: StreamState, event: HeartbeatsRecorded) -> dict[str, Any]:
    owner_beat = event.beats.get(state.user_id)
    if owner_beat is None:
        return {}
    return {"owner_seen_ms": max(state.owner_seen_ms, millis(owner_beat))}


# the stream's own fields each lifecycle event changes (the contexts' parts are theirs)
FOLDS: dict[type[Event], Callable[[StreamState, Any], dict[str, Any]]] = {
    StreamStarted: _started,
    StreamEnded: _stream_ended,
    ViewerLeft: _viewer_left,
    StreamUpdated: _updated,
    HeartbeatsRecorded: _beaten,
}
