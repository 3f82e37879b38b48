"""Devices, notification preferences and read marks: the API's own state in schema `notify`.

Not read models (the log does not hold them, so a replay neither rebuilds nor drops them): the
API writes them directly, as it writes Idempotency-Key bindings. The notifier reads devices and
preferences (projections/notifier.py); the inbox (`social.inbox`) reads the read marks.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine, text

from spaktok.projections.streams_views import to_document

DEVICE_COLUMNS = "device_id, platform, created_at, updated_at"  # a token is not shown back


class TooManyDevices(Exception):
    """The user already has the maximum number of devices."""


def register_device(
    engine: Engine, user_id: str, platform: str, token: str, limit: int
) -> tuple[dict[str, Any], bool]:
    """The device for `token`, now the caller's; True when it was new to them.

    Idempotent per (user, token): the same token again answers the same device. A token registered
    by another user (a phone signed in to another account) moves to the caller under a new id, so
    the old owner's pushes stop and its id never names the new owner's device."""
    new_id = f"dv_{secrets.token_hex(8)}"
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:u))"), {"u": f"devices:{user_id}"})
        count = conn.execute(
            text("SELECT count(*) FROM notify.devices WHERE user_id = :u AND token <> :t"),
            {"u": user_id, "t": token},
        ).scalar_one()
        if count >= limit:
            raise TooManyDevices(f"at most {limit} devices per user: delete one first")
        row = conn.execute(
            text(
                "INSERT INTO notify.devices AS cur "
                "(device_id, user_id, platform, token, created_at, updated_at) "
                "VALUES (:d, :u, :p, :t, now(), now()) ON CONFLICT (token) DO UPDATE SET "
                "device_id = CASE WHEN cur.user_id = EXCLUDED.user_id THEN cur.device_id "
                "ELSE EXCLUDED.device_id END, "
                "created_at = CASE WHEN cur.user_id = EXCLUDED.user_id THEN cur.created_at "
                "ELSE EXCLUDED.created_at END, "
                "user_id = EXCLUDED.user_id, platform = EXCLUDED.platform, updated_at = now() "
                f"RETURNING {DEVICE_COLUMNS}"
            ),
            {"d": new_id, "u": user_id, "p": platform, "t": token},
        ).one()
    doc = to_document(row)
    return doc, doc["deviceId"] == new_id


def list_devices(engine: Engine, user_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT {DEVICE_COLUMNS} FROM notify.devices "
                "WHERE user_id = :u ORDER BY created_at, device_id"
            ),
            {"u": user_id},
        ).fetchall()
    return [to_document(r) for r in rows]


def delete_device(engine: Engine, user_id: str, device_id: str) -> bool:
    """Only the caller's own device; False when they have none by that id."""
    with engine.begin() as conn:
        deleted = conn.execute(
            text("DELETE FROM notify.devices WHERE device_id = :d AND user_id = :u"),
            {"d": device_id, "u": user_id},
        ).rowcount
    return bool(deleted)


def get_preferences(engine: Engine, user_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT muted_channels, muted_kinds FROM notify.preferences WHERE user_id = :u"),
            {"u": user_id},
        ).first()
    channels, kinds = (sorted(row[0]), sorted(row[1])) if row is not None else ([], [])
    return {"mutedChannels": channels, "mutedKinds": kinds}


def put_preferences(engine: Engine, user_id: str, channels: list[str], kinds: list[str]) -> dict[str, Any]:
    """Replace the caller's mutes as a whole."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notify.preferences (user_id, muted_channels, muted_kinds, updated_at) "
                "VALUES (:u, :c, :k, now()) ON CONFLICT (user_id) DO UPDATE SET "
                "muted_channels = EXCLUDED.muted_channels, muted_kinds = EXCLUDED.muted_kinds, "
                "updated_at = now()"
            ),
            {"u": user_id, "c": sorted(set(channels)), "k": sorted(set(kinds))},
        )
    return get_preferences(engine, user_id)


class TooManyMutes(Exception):
    """The user already mutes the maximum number of channels."""


def set_channel_muted(
    engine: Engine, user_id: str, channel_id: str, muted: bool, limit: int
) -> dict[str, Any]:
    """Mute or unmute one channel without rewriting the rest (two devices may do it at once)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notify.preferences (user_id, updated_at) VALUES (:u, now()) "
                "ON CONFLICT (user_id) DO NOTHING"
            ),
            {"u": user_id},
        )
        current = conn.execute(
            text("SELECT muted_channels FROM notify.preferences WHERE user_id = :u FOR UPDATE"),
            {"u": user_id},
        ).scalar_one()
        channels = [c for c in current if c != channel_id] + ([channel_id] if muted else [])
        if len(channels) > max(limit, len(current)):
            raise TooManyMutes(f"at most {limit} muted channels")
        conn.execute(
            text("UPDATE notify.preferences SET muted_channels = :c, updated_at = now() WHERE user_id = :u"),
            {"u": user_id, "c": sorted(channels)},
        )
    return get_preferences(engine, user_id)


def mark_read(engine: Engine, user_id: str, recipients: list[str], notification_id: str) -> bool:
    """Mark one notice of the caller's inbox read (again: no change); False when it is not theirs."""
    with engine.begin() as conn:
        found = conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM notifications WHERE recipient_id = ANY(:r) "
                "AND notification_id = :n)"
            ),
            {"r": recipients, "n": notification_id},
        ).scalar_one()
        if found:
            conn.execute(
                text(
                    "INSERT INTO notify.reads (user_id, notification_id, read_at) VALUES (:u, :n, now()) "
                    "ON CONFLICT DO NOTHING"
                ),
                {"u": user_id, "n": notification_id},
            )
    return bool(found)


def mark_all_read(engine: Engine, user_id: str, recipients: list[str]) -> int:
    """Every notice of the caller's inbox read; how many were unread."""
    with engine.begin() as conn:
        return (
            conn.execute(
                text(
                    "INSERT INTO notify.reads (user_id, notification_id, read_at) SELECT DISTINCT :u, "
                    "notification_id, now() FROM notifications WHERE recipient_id = ANY(:r) "
                    "ON CONFLICT DO NOTHING"
                ),
                {"u": user_id, "r": recipients},
            ).rowcount
            or 0
        )


def unread_count(engine: Engine, user_id: str, recipients: list[str]) -> int:
    """The caller's notices (each once, whether it reached them by name or by role) not read."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(DISTINCT n.notification_id) FROM notifications n WHERE "
                    "n.recipient_id = ANY(:r) AND NOT EXISTS (SELECT 1 FROM notify.reads r "
                    "WHERE r.user_id = :u AND r.notification_id = n.notification_id)"
                ),
                {"u": user_id, "r": recipients},
            ).scalar_one()
        )
