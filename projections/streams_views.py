"""Read queries over the stream read model, next to the projection that owns the tables."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, text

STREAM_COLUMNS = """stream_id, user_id, username, user_profile_image, title, category, tags, language,
    privacy, status, stream_url, playback_url, thumbnail_url, is_recorded, recording_url, is_premium,
    is_age_restricted, allow_comments, allow_gifts, quality, bitrate, location, schedule_id,
    viewer_count, peak_viewer_count, total_views, likes, comments, gifts, gift_revenue, duration,
    moderation_status, slow_mode_seconds, moderators, banned_users, guest_users, pk_battle_id,
    pk_opponent_id, pk_score, started_at, ended_at, created_at, last_updated, ingest_status,
    ingest_changed_at, key_generation, allowed_user_ids, end_reason, live_thumbnail,
    channel_moderators, like_shards"""


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def to_document(row: Any) -> dict[str, Any]:
    """A row as the API's camelCase JSON document."""
    out: dict[str, Any] = {}
    for key, value in row._mapping.items():
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        out[camel(key)] = value
    return out


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """Raises ValueError on a cursor that was not produced by `encode_cursor`."""
    padded = cursor + "=" * (-len(cursor) % 4)
    values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(values, list):
        raise ValueError("bad cursor")
    return values


def get_stream(engine: Engine, stream_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT {STREAM_COLUMNS} FROM live_streams WHERE stream_id = :s"), {"s": stream_id}
        ).first()
    return to_document(row) if row is not None else None


VISIBLE = """(user_id = :me OR :me = ANY(moderators) OR :me = ANY(channel_moderators)
    OR :me = ANY(guest_users) OR (
    (privacy <> 'private' OR :me = ANY(allowed_user_ids))
    AND NOT (:me = ANY(banned_users))
    AND (privacy <> 'followers' OR EXISTS (
        SELECT 1 FROM follows f WHERE f.followee_id = live_streams.user_id AND f.follower_id = :me))
    AND NOT (is_age_restricted AND CAST(:minor AS boolean))
    AND moderation_status IS DISTINCT FROM 'suspended'))"""


def list_streams(
    engine: Engine,
    *,
    status: str | None,
    category: str | None,
    tag: str | None,
    language: str | None,
    cursor: str | None,
    limit: int,
    viewer_id: str = "",
    staff: bool = False,
    minor: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """Streams the viewer may watch, ordered by viewer count (desc), keyset-paginated.

    The visibility clause is `api/access.py`'s policy in SQL (keep the two in step): staff see every
    stream; the owner, its moderators (its own and the channel's) and guests theirs; others a stream
    when it is not private (or they are allowed), they are not banned, they follow the broadcaster
    of a followers-only stream, they are not a known minor on an age-restricted one, and it was not
    suspended."""
    where = [] if staff else [VISIBLE]
    params: dict[str, Any] = {"limit": limit + 1, "me": viewer_id, "minor": minor}
    for column, value in (("status", status), ("category", category), ("language", language)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    if tag is not None:
        where.append(":tag = ANY(tags)")
        params["tag"] = tag
    most_watched_after(cursor, where, params)
    sql = (
        f"SELECT {STREAM_COLUMNS} FROM live_streams WHERE {' AND '.join(where) or 'TRUE'} "
        f"ORDER BY {MOST_WATCHED} LIMIT :limit"
    )
    return keyset_page(engine, sql, params, limit, ("viewerCount", "streamId"))


MOST_WATCHED = "viewer_count DESC, stream_id DESC"


def most_watched_after(cursor: str | None, where: list[str], params: dict[str, Any]) -> None:
    """The keyset clause of a `MOST_WATCHED` list after `cursor` (ValueError/TypeError if it is not
    one of ours)."""
    if cursor is not None:
        viewers, stream_id = decode_cursor(cursor)
        where.append("(viewer_count, stream_id) < (:cv, :cs)")
        params.update(cv=int(viewers), cs=str(stream_id))


def keyset_page(
    engine: Engine, sql: str, params: dict[str, Any], limit: int, key: tuple[str, str]
) -> tuple[list[dict[str, Any]], str | None]:
    """Run a list query that asked for `limit + 1` rows: the documents of the first `limit`, and the
    cursor (the last one's `key` fields) when there is more."""
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).fetchall()
    docs = [to_document(r) for r in rows[:limit]]
    more = len(rows) > limit
    return docs, encode_cursor(*(docs[-1][field] for field in key)) if more else None


def list_viewers(
    engine: Engine, stream_id: str, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    params: dict[str, Any] = {"s": stream_id, "limit": limit + 1, "after": ""}
    if cursor is not None:
        params["after"] = str(decode_cursor(cursor)[0])
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT stream_id, user_id, username, user_profile_image, joined_at, last_heartbeat, "
                "watch_time, comments_posted, gifts_sent FROM stream_viewers "
                "WHERE stream_id = :s AND is_active AND user_id > :after ORDER BY user_id LIMIT :limit"
            ),
            params,
        ).fetchall()
    docs = [to_document(r) for r in rows[:limit]]
    next_cursor = encode_cursor(docs[-1]["userId"]) if len(rows) > limit else None
    return docs, next_cursor


HISTORY_EXTRAS = (
    "gift_id",
    "gift_name",
    "gift_count",
    "coin_cost",
    "combo_count",
    "system_kind",
    "subject_id",
)


def list_comments(
    engine: Engine,
    stream_id: str,
    *,
    before: int | None,
    limit: int,
    types: tuple[str, ...] = ("text",),
) -> list[dict[str, Any]]:
    """Newest first (by the stream's event sequence: its log order); `before` is a sequence from a
    previous page. Deleted comments are hidden. `types`: which of text, gift, system; a message
    carries only the fields of its type (a text comment looks as it always did)."""
    params: dict[str, Any] = {
        "s": stream_id,
        "limit": limit,
        "before": before if before is not None else 2**62,
        "types": list(types),
    }
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT comment_id, stream_id, user_id, username, user_profile_image, text, type, "
                f'"timestamp", is_pinned, sequence, {", ".join(HISTORY_EXTRAS)} FROM stream_comments '
                "WHERE stream_id = :s AND NOT is_deleted AND sequence < :before AND type = ANY(:types) "
                "ORDER BY sequence DESC LIMIT :limit"
            ),
            params,
        ).fetchall()
    extras = {camel(column) for column in HISTORY_EXTRAS}
    return [{k: v for k, v in to_document(r).items() if v is not None or k not in extras} for r in rows]


def get_comment(engine: Engine, stream_id: str, comment_id: str) -> dict[str, Any] | None:
    """One text comment, deleted or not (the moderation endpoints need to tell those apart). Gift and
    system messages are records, not speech: they cannot be deleted or pinned."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT comment_id, stream_id, user_id, username, text, is_pinned, is_deleted "
                "FROM stream_comments WHERE stream_id = :s AND comment_id = :c AND type = 'text'"
            ),
            {"s": stream_id, "c": comment_id},
        ).first()
    return to_document(row) if row is not None else None
