"""Read queries of a user's channel over the stream read model (issue #18, spec §9.1 "live indicator").

Every query filters with `streams_views.VISIBLE`, the SQL form of `api/access.py`'s policy that
discovery uses: a stream the caller may not see is left out, exactly as discovery leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from spaktok.projections.streams_views import (
    MOST_WATCHED,
    VISIBLE,
    decode_cursor,
    keyset_page,
    most_watched_after,
    to_document,
)

CHANNEL_COLUMNS = """stream_id, user_id, username, title, category, privacy, status, thumbnail_url,
    viewer_count, peak_viewer_count, total_views, started_at, ended_at, duration, end_reason,
    moderation_status, live_thumbnail"""
HAS_REPLAY = """EXISTS (SELECT 1 FROM stream_recordings r WHERE r.stream_id = live_streams.stream_id
    AND r.deleted_at IS NULL) AND moderation_status IS DISTINCT FROM 'suspended' AS has_replay"""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, as the visibility clause needs it (see `api/readable.py` for the token side)."""

    user_id: str
    staff: bool = False
    minor: bool = False

    def where(self) -> tuple[list[str], dict[str, Any]]:
        """The visibility clause (none for staff) and its parameters."""
        return ([] if self.staff else [VISIBLE]), {"me": self.user_id, "minor": self.minor}


def live_stream_of(engine: Engine, owner_id: str, caller: Caller) -> dict[str, Any] | None:
    """The owner's live stream if the caller may see it; None when not live or hidden from them."""
    where, params = caller.where()
    where += ["user_id = :owner", "status = 'live'"]
    sql = (
        f"SELECT stream_id, title, viewer_count, started_at FROM live_streams WHERE {' AND '.join(where)} "
        "ORDER BY started_at DESC, stream_id DESC LIMIT 1"
    )
    with engine.connect() as conn:
        row = conn.execute(text(sql), {**params, "owner": owner_id}).first()
    return to_document(row) if row is not None else None


def streams_of(
    engine: Engine, owner_id: str, caller: Caller, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The owner's streams the caller may see, newest start first, keyset-paginated on
    (started_at, stream_id). Raises ValueError/TypeError on a cursor this query did not produce."""
    where, params = caller.where()
    where.append("user_id = :owner")
    params.update(owner=owner_id, limit=limit + 1)
    if cursor is not None:
        started_at, stream_id = decode_cursor(cursor)
        where.append("(started_at, stream_id) < (CAST(:ca AS timestamptz), :cs)")
        params.update(ca=str(started_at), cs=str(stream_id))
    sql = (
        f"SELECT {CHANNEL_COLUMNS}, {HAS_REPLAY} FROM live_streams WHERE {' AND '.join(where)} "
        "ORDER BY started_at DESC, stream_id DESC LIMIT :limit"
    )
    return keyset_page(engine, sql, params, limit, ("startedAt", "streamId"))


def followed_live(
    engine: Engine, caller: Caller, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Live streams of the channels the caller follows that the caller may see, most watched first
    (discovery's order and cursor). A staff caller is still only shown the channels they follow."""
    where, params = caller.where()
    where += [
        "status = 'live'",
        "EXISTS (SELECT 1 FROM follows fl WHERE fl.followee_id = live_streams.user_id"
        " AND fl.follower_id = :me)",
    ]
    params["limit"] = limit + 1
    most_watched_after(cursor, where, params)
    sql = (
        f"SELECT {CHANNEL_COLUMNS} FROM live_streams WHERE {' AND '.join(where)} "
        f"ORDER BY {MOST_WATCHED} LIMIT :limit"
    )
    return keyset_page(engine, sql, params, limit, ("viewerCount", "streamId"))


def moderators_of(engine: Engine, channel_id: str) -> list[dict[str, Any]]:
    """The channel's moderators, longest-serving first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT moderator_id AS user_id, added_at FROM channel_moderators WHERE channel_id = :c "
                "ORDER BY added_at, moderator_id"
            ),
            {"c": channel_id},
        ).fetchall()
    return [to_document(r) for r in rows]
