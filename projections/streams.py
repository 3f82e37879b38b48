"""The Postgres read model of streams, viewers, comments and likes (spec §2.1-2.4)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from sqlalchemy import Connection, Engine, text

from spaktok.events.envelope import Envelope
from spaktok.events.stream_shards import ShardHeartbeatsRecorded, ShardLikesRecorded
from spaktok.events.streams import (
    CommentDeleted,
    CommentPinned,
    CommentUnpinned,
    ShardLikesFolded,
    StreamEnded,
    StreamStarted,
    StreamUpdated,
)
from spaktok.projections import (
    battles,
    channels,
    chat_history,
    enforcement,
    media,
    moderation,
    money,
    postgres,
    social,
    stream_runs,
    stretches,
)
from spaktok.projections.runner import Record

Handler = Callable[[Connection, Envelope], int]

INSERT_STREAM = text(
    """INSERT INTO live_streams (stream_id, user_id, username, user_profile_image, title, category, tags,
        language, privacy, status, stream_url, playback_url, is_recorded, is_premium, is_age_restricted,
        allow_comments, allow_gifts, quality, location, schedule_id, started_at, created_at, last_updated,
        allowed_user_ids, channel_moderators, like_shards)
    VALUES (:stream_id, :user_id, :username, :user_profile_image, :title, :category, :tags, :language,
        :privacy, 'live', :ingest_url, :playback_url, :is_recorded, :is_premium, :is_age_restricted,
        :allow_comments, :allow_gifts, :quality, CAST(:location AS jsonb), :schedule_id, :started_at,
        :started_at, :started_at, :allowed_user_ids, :channel_moderators, :like_shards)
    ON CONFLICT (stream_id) DO NOTHING"""
)


def _started(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, StreamStarted)
    params = e.model_dump()
    params["location"] = orjson.dumps(e.location).decode() if e.location is not None else None
    conn.execute(INSERT_STREAM, params)
    return 1


# A hot stream's beats come on its shards' topic, so they may be projected before the viewer's join
# (read from the stream's topic) or after their leave, live under lag and in any order by a replay.
# Every write of last_heartbeat is a maximum, and a beat ahead of its join leaves a placeholder row
# that the join completes: the row ends the same whatever the order.
UPSERT_SHARD_HEARTBEATS = text(
    """INSERT INTO stream_viewers AS v (stream_id, user_id, username, joined_at, is_active, last_heartbeat)
    SELECT :s, b.user_id, '', b.at, false, b.at
    FROM unnest(CAST(:users AS text[]), CAST(:ats AS timestamptz[])) AS b(user_id, at)
    ON CONFLICT (stream_id, user_id) DO UPDATE
    SET last_heartbeat = GREATEST(v.last_heartbeat, EXCLUDED.last_heartbeat)"""
)


def _shard_heartbeats(conn: Connection, env: Envelope) -> int:
    """A hot stream's viewers' heartbeats, kept by its shards, keyed by the stream (see above)."""
    e = env.event()
    assert isinstance(e, ShardHeartbeatsRecorded)
    params = {"s": e.stream_id, "users": list(e.beats), "ats": list(e.beats.values())}
    conn.execute(UPSERT_SHARD_HEARTBEATS, params)
    return len(e.beats)


# each one's events of a stretch of the batch are written one statement per table (projections/stretches.py)
BATCH_HANDLERS: dict[str, stretches.BatchHandler] = {**money.BATCH_HANDLERS, **stream_runs.BATCH_HANDLERS}


UPDATABLE_COLUMNS = {  # event field -> live_streams column; nothing else can be set this way
    "title": "title",
    "category": "category",
    "tags": "tags",
    "allow_comments": "allow_comments",
    "allow_gifts": "allow_gifts",
    "privacy": "privacy",
    "slow_mode_seconds": "slow_mode_seconds",
    "allowed_user_ids": "allowed_user_ids",
}


def _updated(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, StreamUpdated)
    changes = {UPDATABLE_COLUMNS[k]: v for k, v in e.changes.items() if k in UPDATABLE_COLUMNS}
    assignments = ", ".join(f"{column} = :{column}" for column in changes)
    conn.execute(
        text(f"UPDATE live_streams SET {assignments}, last_updated = :at WHERE stream_id = :s"),
        {**changes, "at": e.updated_at, "s": env.aggregate_id},
    )
    return 1


def _comment_deleted(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, CommentDeleted)
    result = conn.execute(
        text(
            "UPDATE stream_comments SET is_deleted = true, is_pinned = false, deleted_by = :by "
            "WHERE comment_id = :c AND stream_id = :s"
        ),
        {"c": e.comment_id, "s": env.aggregate_id, "by": e.deleted_by},
    )
    return (result.rowcount or 0) + moderation.LOG_ONLY["streams.CommentDeleted"](conn, env)


def _comment_pinned(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, CommentPinned)
    result = conn.execute(
        text(
            "UPDATE stream_comments SET is_pinned = (comment_id = :c) "
            "WHERE stream_id = :s AND comment_id IN (:c, :previous)"
        ),
        {"c": e.comment_id, "previous": e.previous_comment_id or "", "s": env.aggregate_id},
    )
    return result.rowcount or 0


def _comment_unpinned(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, CommentUnpinned)
    result = conn.execute(
        text("UPDATE stream_comments SET is_pinned = false WHERE stream_id = :s AND comment_id = :c"),
        {"c": e.comment_id, "s": env.aggregate_id},
    )
    return result.rowcount or 0


def _shard_likes(conn: Connection, env: Envelope) -> int:
    """Who liked a hot stream, counted by its shards; the stream's total comes with the fold below."""
    e = env.event()
    assert isinstance(e, ShardLikesRecorded)
    params = {"s": e.stream_id, "users": list(e.likes), "counts": list(e.likes.values()), "at": e.recorded_at}
    conn.execute(stream_runs.UPSERT_LIKES, params)
    return len(e.likes)


def _shard_likes_folded(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, ShardLikesFolded)
    conn.execute(
        text("UPDATE live_streams SET likes = :n, last_updated = :at WHERE stream_id = :s"),
        {"s": env.aggregate_id, "n": e.total_likes, "at": e.folded_at},
    )
    return 1


def _ended(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, StreamEnded)
    conn.execute(
        text(
            """UPDATE live_streams SET status = 'ended', ended_at = :at, duration = :d, viewer_count = 0,
                peak_viewer_count = :p, total_views = :t, likes = :l, comments = :c, gifts = :g,
                gift_revenue = :r, last_updated = :at, end_reason = :why,
                ingest_status = CASE WHEN ingest_status = 'waiting' THEN 'waiting' ELSE 'stopped' END
                WHERE stream_id = :s"""
        ),
        {
            "s": env.aggregate_id,
            "at": e.ended_at,
            "d": e.duration,
            "p": e.peak_viewer_count,
            "t": e.total_views,
            "l": e.likes,
            "c": e.comments,
            "g": e.gifts,
            "r": e.gift_revenue,
            "why": e.reason,
        },
    )
    return 1 + moderation.log_moderated_end(conn, env, e)


HANDLERS: dict[str, Handler] = chat_history.with_system_messages(
    {
        "streams.StreamStarted": _started,
        **{kind: stretches.one_at_a_time(batch) for kind, batch in stream_runs.BATCH_HANDLERS.items()},
        "streams.ShardLikesFolded": _shard_likes_folded,
        "stream_shards.ShardLikesRecorded": _shard_likes,
        "stream_shards.ShardHeartbeatsRecorded": _shard_heartbeats,
        "streams.CommentDeleted": _comment_deleted,
        "streams.StreamUpdated": _updated,
        **social.HANDLERS,
        **moderation.HANDLERS,
        **money.HANDLERS,
        **battles.HANDLERS,
        **media.HANDLERS,
        **enforcement.HANDLERS,
        **channels.HANDLERS,
        "streams.CommentPinned": _comment_pinned,
        "streams.CommentUnpinned": _comment_unpinned,
        "streams.StreamEnded": _ended,
    }
)


class PostgresStreamsProjector:
    """Folds stream events into Postgres; rows, positions and checkpoints commit together."""

    name = "postgres-streams"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def checkpoints(self) -> dict[tuple[str, int], int]:
        return postgres.load_checkpoints(self.engine, self.name)

    def apply(self, records: list[Record], skipped: dict[tuple[str, int], int]) -> int:
        rows = 0
        with self.engine.begin() as conn:
            postgres.live_lock(conn)
            claimed = postgres.claim_records(conn, self.name, records)
            fresh = postgres.fresh_records(conn, self.name, claimed)
            runs = stretches.plan(
                [r.envelope for r in fresh], BATCH_HANDLERS, stream_runs.footprint, stream_runs.stream_figures
            )
            for batch, run in runs:
                if batch is not None:
                    rows += batch(conn, run)
                    continue
                for env in run:
                    handler = HANDLERS.get(env.type)
                    if handler is not None:
                        rows += handler(conn, env)
            postgres.save_checkpoints(conn, self.name, records, skipped, len(fresh), rows)
        return rows
