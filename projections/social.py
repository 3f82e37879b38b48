"""Postgres read model of follows and the notification inbox (handlers of the streams projector)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, text

from spaktok.events.audiences import FollowersNotified
from spaktok.events.battles import BattleNotified
from spaktok.events.broadcasters import UserFollowed, UserUnfollowed
from spaktok.events.envelope import Envelope
from spaktok.events.schedules import (
    ReminderSet,
    RemindersNotified,
    ScheduleCancelled,
    ScheduleDue,
    ScheduleReminded,
    ScheduleStarted,
    StreamScheduled,
)
from spaktok.events.streams import ModerationNotified
from spaktok.projections.streams_views import decode_cursor, encode_cursor, to_document


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
    """A notice may arrive twice (a retried batch), and one occasion may reach a user both as a
    follower and as a reminder holder: one inbox row per recipient and notification id."""
    e = env.event()
    assert isinstance(e, FollowersNotified | RemindersNotified | ModerationNotified | BattleNotified)
    result = conn.execute(
        text(
            "INSERT INTO notifications (recipient_id, notification_id, kind, channel_id, stream_id, "
            "schedule_id, title, actor_name, created_at) SELECT r, :n, :k, :c, :s, :sc, :t, :a, :at "
            "FROM unnest(CAST(:recipients AS text[])) AS r ON CONFLICT DO NOTHING"
        ),
        {
            "recipients": e.recipients,
            "n": e.notification_id,
            "k": e.kind,
            "c": e.channel_id,
            "s": getattr(e, "stream_id", None),
            "sc": getattr(e, "schedule_id", None),
            "t": e.title,
            "a": e.actor_name,
            "at": e.sent_at,
        },
    )
    return result.rowcount or 0


def _scheduled(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, StreamScheduled)
    conn.execute(
        text(
            "INSERT INTO stream_schedules (schedule_id, user_id, username, title, description, "
            "thumbnail_url, scheduled_for, category, tags, notify_followers, status, created_at, "
            "last_updated) VALUES "
            "(:id, :u, :name, :title, :d, :thumb, :for, :cat, :tags, :nf, 'scheduled', :at, :at) "
            "ON CONFLICT (schedule_id) DO NOTHING"
        ),
        {
            "id": e.schedule_id,
            "u": e.user_id,
            "name": e.username,
            "title": e.title,
            "d": e.description,
            "thumb": e.thumbnail_url,
            "for": e.scheduled_for,
            "cat": e.category,
            "tags": e.tags,
            "nf": e.notify_followers,
            "at": e.created_at,
        },
    )
    return 1


def _reminder(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, ReminderSet)
    added = conn.execute(
        text(
            "INSERT INTO schedule_reminders (schedule_id, user_id, set_at) VALUES (:s, :u, :at) "
            "ON CONFLICT DO NOTHING"
        ),
        {"s": env.aggregate_id, "u": e.user_id, "at": e.set_at},
    ).rowcount
    conn.execute(
        text(
            "UPDATE stream_schedules SET reminders = reminders + :n, last_updated = :at "
            "WHERE schedule_id = :s"
        ),
        {"s": env.aggregate_id, "n": added or 0, "at": e.set_at},
    )
    return 2


def _schedule_status(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, ScheduleCancelled | ScheduleReminded | ScheduleDue | ScheduleStarted)
    match e:
        case ScheduleCancelled():
            sql, params = "status = 'cancelled', last_updated = :at", {"at": e.cancelled_at}
        case ScheduleReminded():
            sql, params = "reminded_at = :at, last_updated = :at", {"at": e.reminded_at}
        case ScheduleDue():
            sql, params = "notified_at = :at, last_updated = :at", {"at": e.due_at}
        case ScheduleStarted():
            sql = "status = 'started', stream_id = :stream, last_updated = :at"
            params = {"at": e.started_at, "stream": e.stream_id}
    conn.execute(
        text(f"UPDATE stream_schedules SET {sql} WHERE schedule_id = :s"), {**params, "s": env.aggregate_id}
    )
    return 1


HANDLERS: dict[str, Callable[[Connection, Envelope], int]] = {
    "broadcasters.UserFollowed": _followed,
    "broadcasters.UserUnfollowed": _unfollowed,
    "audiences.FollowersNotified": _notified,
    "schedules.RemindersNotified": _notified,
    "streams.ModerationNotified": _notified,
    "battles.BattleNotified": _notified,
    "schedules.StreamScheduled": _scheduled,
    "schedules.ReminderSet": _reminder,
    "schedules.ScheduleCancelled": _schedule_status,
    "schedules.ScheduleReminded": _schedule_status,
    "schedules.ScheduleDue": _schedule_status,
    "schedules.ScheduleStarted": _schedule_status,
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
    engine: Engine, user_id: str, *, cursor: str | None, limit: int, roles: frozenset[str] = frozenset()
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paginated on (created_at, notification_id); `role:X` rows reach role X.
    `read`: the caller marked it read (notify.reads: per reader, so a role's notice is read per user)."""
    where = "recipient_id = ANY(:recipients)"
    recipients = [user_id, *(f"role:{role}" for role in sorted(roles))]
    params: dict[str, Any] = {"recipients": recipients, "limit": limit + 1, "reader": user_id}
    if cursor is not None:
        created_at, notification_id = decode_cursor(cursor)
        where += " AND (created_at, notification_id) < (CAST(:ca AS timestamptz), :ni)"
        params.update(ca=created_at, ni=notification_id)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT notification_id, kind, channel_id, stream_id, schedule_id, title, actor_name, "
                "created_at, EXISTS (SELECT 1 FROM notify.reads r WHERE r.user_id = :reader "
                "AND r.notification_id = notifications.notification_id) AS read "
                f"FROM notifications WHERE {where} "
                "ORDER BY created_at DESC, notification_id DESC LIMIT :limit"
            ),
            params,
        ).fetchall()
    docs = [to_document(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(docs[-1]["createdAt"], docs[-1]["notificationId"])
    return docs, next_cursor


SCHEDULE_COLUMNS = (
    "schedule_id, user_id, username, title, description, thumbnail_url, scheduled_for, category, tags, "
    "notify_followers, status, stream_id, reminders, reminded_at, notified_at, created_at"
)


def get_schedule(engine: Engine, schedule_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT {SCHEDULE_COLUMNS} FROM stream_schedules WHERE schedule_id = :s"),
            {"s": schedule_id},
        ).first()
    return to_document(row) if row is not None else None


def list_schedules(
    engine: Engine, *, user_id: str | None, upcoming_only: bool, limit: int
) -> list[dict[str, Any]]:
    """Soonest first."""
    where, params = ["TRUE"], {"limit": limit}
    if user_id is not None:
        where.append("user_id = :u")
        params["u"] = user_id
    if upcoming_only:
        where.append("status = 'scheduled'")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT {SCHEDULE_COLUMNS} FROM stream_schedules WHERE {' AND '.join(where)} "
                "ORDER BY scheduled_for, schedule_id LIMIT :limit"
            ),
            params,
        ).fetchall()
    return [to_document(r) for r in rows]
