"""The replay's folds of the stream's own rows (streams, viewers, comments, likes) and the helpers
the other folds share: each the in-memory twin of one SQL handler, named in its docstring
(projections/replay_fold.py says how they are used)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spaktok.events.envelope import Envelope
from spaktok.projections import chat_history, moderation
from spaktok.projections.row_store import Row, RowStore

Fold = Callable[[RowStore, Envelope], int]


def stream_update(store: RowStore, stream_id: str, **values: Any) -> None:
    """`UPDATE live_streams SET ... WHERE stream_id = :s` (no row: no effect)."""
    row = store.get("live_streams", (stream_id,))
    if row is not None:
        row.update(values)
        store.touch("live_streams", (stream_id,))


def started(store: RowStore, env: Envelope) -> int:
    """streams.started: INSERT ... ON CONFLICT DO NOTHING."""
    e: Any = env.event()
    key = (e.stream_id,)
    if store.get("live_streams", key) is not None:
        return 1
    store.new(
        "live_streams",
        key,
        stream_id=e.stream_id,
        user_id=e.user_id,
        username=e.username,
        user_profile_image=e.user_profile_image,
        title=e.title,
        category=e.category,
        tags=list(e.tags),
        language=e.language,
        privacy=e.privacy,
        status="live",
        stream_url=e.ingest_url,
        playback_url=e.playback_url,
        is_recorded=e.is_recorded,
        is_premium=e.is_premium,
        is_age_restricted=e.is_age_restricted,
        allow_comments=e.allow_comments,
        allow_gifts=e.allow_gifts,
        quality=e.quality,
        location=e.location,
        schedule_id=e.schedule_id,
        started_at=e.started_at,
        created_at=e.started_at,
        last_updated=e.started_at,
        allowed_user_ids=list(e.allowed_user_ids),
        channel_moderators=list(e.channel_moderators),
        like_shards=e.like_shards,
    )
    return 1


def joined(store: RowStore, env: Envelope) -> int:
    """stream_runs.joins: upsert the viewer, then the stream's counters."""
    e: Any = env.event()
    key = (env.aggregate_id, e.user_id)
    row = store.get("stream_viewers", key)
    if row is None:
        store.new(
            "stream_viewers",
            key,
            stream_id=env.aggregate_id,
            user_id=e.user_id,
            username=e.username,
            user_profile_image=e.user_profile_image,
            joined_at=e.joined_at,
            is_active=True,
            last_heartbeat=e.joined_at,
        )
    else:
        row.update(
            is_active=True,
            joined_at=e.joined_at,
            left_at=None,
            last_heartbeat=max(row["last_heartbeat"], e.joined_at),
            username=e.username,
            user_profile_image=e.user_profile_image,
        )
        store.touch("stream_viewers", key)
    stream_update(
        store,
        env.aggregate_id,
        viewer_count=e.viewer_count,
        peak_viewer_count=e.peak_viewer_count,
        total_views=e.total_views,
        last_updated=e.joined_at,
    )
    return 2


def left(store: RowStore, env: Envelope) -> int:
    """stream_runs.leaves."""
    e: Any = env.event()
    key = (env.aggregate_id, e.user_id)
    row = store.get("stream_viewers", key)
    if row is not None:
        row.update(is_active=False, left_at=e.left_at, watch_time=e.watch_time)
        store.touch("stream_viewers", key)
    stream_update(store, env.aggregate_id, viewer_count=e.viewer_count, last_updated=e.left_at)
    return 2


def heartbeats(store: RowStore, env: Envelope) -> int:
    """stream_runs.heartbeats: last_heartbeat = GREATEST(last_heartbeat, at) of active viewers."""
    e: Any = env.event()
    for user, at in e.beats.items():
        key = (env.aggregate_id, user)
        row = store.get("stream_viewers", key)
        if row is not None and row["is_active"]:
            if at > row["last_heartbeat"]:
                row["last_heartbeat"] = at
                store.touch("stream_viewers", key)
    return len(e.beats)


def shard_heartbeats(store: RowStore, env: Envelope) -> int:
    """streams.shard_heartbeats: last_heartbeat = GREATEST(last_heartbeat, at), a placeholder row
    for a viewer whose join is not here yet."""
    e: Any = env.event()
    for user, at in e.beats.items():
        key = (e.stream_id, user)
        row = store.get("stream_viewers", key)
        if row is None:
            store.new(
                "stream_viewers",
                key,
                stream_id=e.stream_id,
                user_id=user,
                username="",
                joined_at=at,
                is_active=False,
                last_heartbeat=at,
            )
        elif at > row["last_heartbeat"]:
            row["last_heartbeat"] = at
            store.touch("stream_viewers", key)
    return len(e.beats)


def comment(store: RowStore, env: Envelope) -> int:
    """stream_runs.comments: the comment (if new), the viewer's count, the stream's count."""
    e: Any = env.event()
    if store.get("stream_comments", (e.comment_id,)) is None:
        store.new(
            "stream_comments",
            (e.comment_id,),
            comment_id=e.comment_id,
            stream_id=env.aggregate_id,
            user_id=e.user_id,
            username=e.username,
            user_profile_image=e.user_profile_image,
            text=e.text,
            type=e.comment_type,
            timestamp=e.posted_at,
            sequence=env.sequence,
        )
    viewer = store.get("stream_viewers", (env.aggregate_id, e.user_id))
    if viewer is not None:
        viewer["comments_posted"] += 1
        store.touch("stream_viewers", (env.aggregate_id, e.user_id))
    stream_update(store, env.aggregate_id, comments=e.comments, last_updated=e.posted_at)
    return 3


def likes(store: RowStore, env: Envelope) -> int:
    """stream_runs.likes: per user like_count += taps, timestamp = the batch's time."""
    e: Any = env.event()
    _likers(store, env.aggregate_id, e.likes, e.recorded_at)
    stream_update(store, env.aggregate_id, likes=e.total_likes, last_updated=e.recorded_at)
    return len(e.likes) + 1


def shard_likes(store: RowStore, env: Envelope) -> int:
    """streams.shard_likes: a hot stream's likers, counted by its shards."""
    e: Any = env.event()
    _likers(store, e.stream_id, e.likes, e.recorded_at)
    return len(e.likes)


def shard_likes_folded(store: RowStore, env: Envelope) -> int:
    """streams.shard_likes_folded: the stream's total, folded from its shards."""
    e: Any = env.event()
    stream_update(store, env.aggregate_id, likes=e.total_likes, last_updated=e.folded_at)
    return 1


def _likers(store: RowStore, stream_id: str, likes: dict[str, int], at: Any) -> None:
    for user, taps in likes.items():
        key = (stream_id, user)
        row = store.get("stream_likes", key)
        if row is None:
            store.new("stream_likes", key, stream_id=stream_id, user_id=user, like_count=taps, timestamp=at)
        else:
            row["like_count"] += taps
            row["timestamp"] = at
            store.touch("stream_likes", key)


def ended(store: RowStore, env: Envelope) -> int:
    """streams.ended."""
    e: Any = env.event()
    row = store.get("live_streams", (env.aggregate_id,))
    if row is not None:
        row.update(
            status="ended",
            ended_at=e.ended_at,
            duration=e.duration,
            viewer_count=0,
            peak_viewer_count=e.peak_viewer_count,
            total_views=e.total_views,
            likes=e.likes,
            comments=e.comments,
            gifts=e.gifts,
            gift_revenue=e.gift_revenue,
            last_updated=e.ended_at,
            end_reason=e.reason,
            ingest_status="waiting" if row["ingest_status"] == "waiting" else "stopped",
        )
        store.touch("live_streams", (env.aggregate_id,))
    # the moderation log is not held in memory: its one row goes straight to Postgres
    return 1 + moderation.log_moderated_end(store.conn, env, e)


def message(store: RowStore, row: Row) -> int:
    """chat_history.INSERT_MESSAGE: a history message (if new)."""
    if store.get("stream_comments", (row["comment_id"],)) is not None:
        return 0
    store.new("stream_comments", (row["comment_id"],), **row)
    return 1


def with_system_message(fold: Fold) -> Fold:
    """chat_history.with_system_messages: the event's fold, then its system message (if new)."""

    def folded(store: RowStore, env: Envelope) -> int:
        return fold(store, env) + message(store, chat_history.system_message(env))

    return folded
