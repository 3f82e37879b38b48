"""Postgres read model of follows and the notification inbox (handlers of the streams projector)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spaktok.events.audiences import FollowersNotified
from spaktok.events.broadcasters import UserFollowed, UserUnfollowed
from spaktok.events.envelope import Envelope
from spaktok.projections.streams_views import decode_cursor, encode_cursor, to_document
from sqlalchemy import Connection, Engine, text


def _followed(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, UserFollowed)
    conn.execute(
        text(
            "INSERT INTO follows (follower_id, followee_id, followed_at) VALUES (:f, :c, :at) "
            "ON CONFLICT DO NOTHING"
        ),
        {"f": env.aggregate_id, "c": e.followee_id, "at": e.followed_at},
    )
    return 1


def _unfollowed(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, UserUnfollowed)
    conn.execute(
        text("DELETE FROM follows WHERE follower_id = :f AND followee_id = :c"),
        {"f": env.aggregate_id, "c": e.followee_id},
    )
    return 1


def _notified(conn: Connection, env: Envelope) -> int:
    """A notice may arrive twice (a retried batch): one inbox row per recipient and occasion."""
    e = env.event()
    assert isinstance(e, FollowersNotified)
    result = conn.execute(
        text(
            "INSERT INTO notifications (recipient_id, notification_id, kind, channel_id, stream_id, title, "
            "actor_name, created_at) SELECT r, :n, :k, :c, :s, :t, :a, :at "
            "FROM unnest(CAST(:recipients AS text[])) AS r ON CONFLICT DO NOTHING"
        ),
        {
            "recipients": e.recipients,
            "n": e.notification_id,
            "k": e.kind,
            "c": e.channel_id,
            "s": e.stream_id,
            "t": e.title,
            "a": e.actor_name,
            "at": e.sent_at,
        },
    )
    return result.rowcount or 0


HANDLERS: dict[str, Callable[[Connection, Envelope], int]] = {
    "broadcasters.UserFollowed": _followed,
    "broadcasters.UserUnfollowed": _unfollowed,
    "audiences.FollowersNotified": _notified,
}


def follows_channel_of_stream(engine: Engine, user_id: str, stream_id: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM follows f JOIN live_streams s ON s.user_id = f.followee_id "
                    "WHERE s.stream_id = :s AND f.follower_id = :u)"
                ),
                {"s": stream_id, "u": user_id},
            ).scalar_one()
        )


def inbox(
    engine: Engine, user_id: str, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paginated on (created_at, notification_id)."""
    where = "recipient_id = :u"
    params: dict[str, Any] = {"u": user_id, "limit": limit + 1}
    if cursor is not None:
        created_at, notification_id = decode_cursor(cursor)
        where += " AND (created_at, notification_id) < (CAST(:ca AS timestamptz), :ni)"
        params.update(ca=created_at, ni=notification_id)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT notification_id, kind, channel_id, stream_id, title, actor_name, created_at, "
                f"read_at IS NOT NULL AS read FROM notifications WHERE {where} "
                "ORDER BY created_at DESC, notification_id DESC LIMIT :limit"
            ),
            params,
        ).fetchall()
    docs = [to_document(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(docs[-1]["createdAt"], docs[-1]["notificationId"])
    return docs, next_cursor
