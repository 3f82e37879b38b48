"""Postgres read model of moderation: bans, timeouts and the moderation log (spec §2.8)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from spaktok.events.envelope import Envelope
from spaktok.events.streams import (
    CommentDeleted,
    GuestJoined,
    GuestRemoved,
    ModeratorAdded,
    ModeratorRemoved,
    StreamEnded,
    StreamFlagged,
    StreamSuspended,
    TimeoutLifted,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
)
from spaktok.projections.streams_views import to_document

LOG = text(
    """INSERT INTO stream_moderation_log (event_id, stream_id, moderator_id, role, action, target_user_id,
        target_comment_id, reason, duration, "timestamp", sequence)
    VALUES (:id, :s, :by, :role, :action, :user, :comment, :reason, :duration, :at, :sequence)
    ON CONFLICT (event_id) DO NOTHING"""
)


def _log(conn: Connection, env: Envelope, action: str, at: datetime, **fields: Any) -> None:
    row = {"user": None, "comment": None, "reason": None, "duration": None, **fields}
    conn.execute(
        LOG,
        {
            "id": env.event_id,
            "s": env.aggregate_id,
            "action": action,
            "at": at,
            "sequence": env.sequence,
            **row,
        },
    )


log_action = _log  # for the other moderation projections (projections/enforcement.py)


def _banned(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, UserBanned)
    conn.execute(
        text(
            "UPDATE live_streams SET banned_users = array_append(array_remove(banned_users, :u), :u), "
            "guest_users = array_remove(guest_users, :u), last_updated = :at WHERE stream_id = :s"
        ),
        {"u": e.user_id, "s": env.aggregate_id, "at": e.banned_at},
    )
    hidden = conn.execute(
        text(
            "UPDATE stream_comments SET is_deleted = true, is_pinned = false, deleted_by = :by "
            'WHERE stream_id = :s AND user_id = :u AND "timestamp" >= :since AND NOT is_deleted'
        ),
        {"by": e.by, "s": env.aggregate_id, "u": e.user_id, "since": e.comments_deleted_since},
    ).rowcount
    _log(conn, env, "ban", e.banned_at, by=e.by, role=e.role, user=e.user_id, reason=e.reason)
    return 2 + (hidden or 0)


def _unbanned(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, UserUnbanned)
    conn.execute(
        text(
            "UPDATE live_streams SET banned_users = array_remove(banned_users, :u), last_updated = :at "
            "WHERE stream_id = :s"
        ),
        {"u": e.user_id, "s": env.aggregate_id, "at": e.unbanned_at},
    )
    _log(conn, env, "unban", e.unbanned_at, by=e.by, role=e.role, user=e.user_id)
    return 2


def _timed_out(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, UserTimedOut)
    _log(
        conn,
        env,
        "timeout",
        e.timed_out_at,
        by=e.by,
        role=e.role,
        user=e.user_id,
        reason=e.reason,
        duration=e.duration,
    )
    return 1


def _timeout_lifted(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, TimeoutLifted)
    _log(conn, env, "lift_timeout", e.lifted_at, by=e.by, role=e.role, user=e.user_id)
    return 1


def _comment_deleted(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, CommentDeleted)
    _log(
        conn,
        env,
        "delete_comment",
        e.deleted_at,
        by=e.deleted_by,
        role=e.role,
        comment=e.comment_id,
        reason=e.reason,
    )
    return 1


def _moderators(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, ModeratorAdded | ModeratorRemoved)
    change = (
        "array_append(array_remove(moderators, :u), :u)"
        if isinstance(e, ModeratorAdded)
        else ("array_remove(moderators, :u)")
    )
    at = e.added_at if isinstance(e, ModeratorAdded) else e.removed_at
    conn.execute(
        text(f"UPDATE live_streams SET moderators = {change}, last_updated = :at WHERE stream_id = :s"),
        {"u": e.user_id, "s": env.aggregate_id, "at": at},
    )
    return 1


def _moderation_status(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, StreamFlagged | StreamSuspended)
    status, at = ("flagged", e.flagged_at) if isinstance(e, StreamFlagged) else ("suspended", e.suspended_at)
    conn.execute(
        text("UPDATE live_streams SET moderation_status = :m, last_updated = :at WHERE stream_id = :s"),
        {"m": status, "at": at, "s": env.aggregate_id},
    )
    if isinstance(e, StreamSuspended):  # by the report threshold ("system") or a platform moderator
        _log(conn, env, "suspend", at, by=e.suspended_by, role="platform", reason=e.reason)
    else:
        _log(conn, env, "flag", at, by="system", role="platform")
    return 2


def log_moderated_end(conn: Connection, env: Envelope, ended: StreamEnded) -> int:
    """A stream ended by moderation (a suspension: by the platform team or the report threshold) is
    an `end_stream` action in its log, after the `suspend` that caused it (same time, next sequence)
    and by the same moderator: the envelope's actor would be the last reporter for a threshold."""
    if ended.reason != "suspended":
        return 0
    by = conn.execute(
        text(
            "SELECT moderator_id FROM stream_moderation_log WHERE stream_id = :s AND action = 'suspend' "
            'ORDER BY "timestamp" DESC, sequence DESC NULLS LAST LIMIT 1'
        ),
        {"s": env.aggregate_id},
    ).scalar()
    _log(conn, env, "end_stream", ended.ended_at, by=by or "system", role="platform", reason=ended.reason)
    return 1


def _guests(conn: Connection, env: Envelope) -> int:
    """Who is on stage: the event carries the whole list after the change."""
    e = env.event()
    assert isinstance(e, GuestJoined | GuestRemoved)
    at = e.joined_at if isinstance(e, GuestJoined) else e.removed_at
    conn.execute(
        text("UPDATE live_streams SET guest_users = :g, last_updated = :at WHERE stream_id = :s"),
        {"g": e.guests, "s": env.aggregate_id, "at": at},
    )
    return 1


HANDLERS: dict[str, Callable[[Connection, Envelope], int]] = {
    "streams.GuestJoined": _guests,
    "streams.GuestRemoved": _guests,
    "streams.StreamFlagged": _moderation_status,
    "streams.StreamSuspended": _moderation_status,
    "streams.UserBanned": _banned,
    "streams.UserUnbanned": _unbanned,
    "streams.UserTimedOut": _timed_out,
    "streams.TimeoutLifted": _timeout_lifted,
    "streams.ModeratorAdded": _moderators,
    "streams.ModeratorRemoved": _moderators,
}
LOG_ONLY = {"streams.CommentDeleted": _comment_deleted}  # its read-model change is in projections/streams


def moderation_log(engine: Engine, stream_id: str, *, limit: int) -> list[dict[str, Any]]:
    """Newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event_id, moderator_id, role, action, target_user_id, target_comment_id, reason, "
                'duration, "timestamp" FROM stream_moderation_log WHERE stream_id = :s '
                'ORDER BY "timestamp" DESC, sequence DESC NULLS LAST, event_id LIMIT :limit'
            ),
            {"s": stream_id, "limit": limit},
        ).fetchall()
    return [to_document(r) for r in rows]
