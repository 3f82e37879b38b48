"""The stream handlers that write a run of consecutive events one statement per table (a join
storm, a chat storm), as the money handlers do: `streams._runs` hands them each run, and a lone
event as a run of one. Each event carries its stream's running figures, so a run writes each
stream's figures once, with its last values."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Connection, text

from spaktok.events.envelope import Envelope
from spaktok.events.streams import CommentPosted, ViewerJoined
from spaktok.projections.money import BatchHandler

_UPSERT_VIEWER = text(
    """INSERT INTO stream_viewers (stream_id, user_id, username, user_profile_image, joined_at,
        is_active, last_heartbeat)
    VALUES (:s, :u, :name, :img, :at, true, :at)
    ON CONFLICT (stream_id, user_id) DO UPDATE SET is_active = true, joined_at = :at, left_at = NULL,
        last_heartbeat = GREATEST(stream_viewers.last_heartbeat, :at), username = :name,
        user_profile_image = :img"""
)
_STREAM_AUDIENCE = text(
    "UPDATE live_streams SET viewer_count = :v, peak_viewer_count = :p, total_views = :t, "
    "last_updated = :at WHERE stream_id = :s"
)


def joins(conn: Connection, envs: list[Envelope]) -> int:
    """A run of consecutive joins (a join storm), one statement per table: the viewers in order,
    each stream's audience once with its last figures (each event carries the running figures)."""
    viewers: list[dict[str, object]] = []
    audience: dict[str, dict[str, object]] = {}
    for env in envs:
        e = env.event()
        assert isinstance(e, ViewerJoined)
        s = env.aggregate_id
        viewers.append(
            {"s": s, "u": e.user_id, "name": e.username, "img": e.user_profile_image, "at": e.joined_at}
        )
        audience[s] = {
            "s": s,
            "v": e.viewer_count,
            "p": e.peak_viewer_count,
            "t": e.total_views,
            "at": e.joined_at,
        }
    conn.execute(_UPSERT_VIEWER, viewers)
    conn.execute(_STREAM_AUDIENCE, list(audience.values()))
    return 2 * len(envs)


_INSERT_COMMENT = text(
    """INSERT INTO stream_comments (comment_id, stream_id, user_id, username, user_profile_image,
        text, type, "timestamp", sequence)
    VALUES (:c, :s, :u, :name, :img, :text, :type, :at, :seq) ON CONFLICT (comment_id) DO NOTHING"""
)
_COUNT_COMMENTS_POSTED = text(
    "UPDATE stream_viewers SET comments_posted = comments_posted + :k WHERE stream_id = :s AND user_id = :u"
)
_STREAM_COMMENTS = text("UPDATE live_streams SET comments = :n, last_updated = :at WHERE stream_id = :s")


def comments(conn: Connection, envs: list[Envelope]) -> int:
    """A run of consecutive comments, one statement per table (psycopg pipelines the rows): the
    comments in order, each commenter's count once with the run's sum, each stream's total once
    with its last value (the event carries the running total). A chat storm is mostly such runs."""
    comments: list[dict[str, object]] = []
    posted: Counter[tuple[str, str]] = Counter()
    totals: dict[str, dict[str, object]] = {}
    for env in envs:
        e = env.event()
        assert isinstance(e, CommentPosted)
        comments.append(
            {
                "c": e.comment_id,
                "s": env.aggregate_id,
                "u": e.user_id,
                "name": e.username,
                "img": e.user_profile_image,
                "text": e.text,
                "type": e.comment_type,
                "at": e.posted_at,
                "seq": env.sequence,
            }
        )
        posted[(env.aggregate_id, e.user_id)] += 1
        totals[env.aggregate_id] = {"s": env.aggregate_id, "n": e.comments, "at": e.posted_at}
    conn.execute(_INSERT_COMMENT, comments)
    conn.execute(_COUNT_COMMENTS_POSTED, [{"s": s, "u": u, "k": k} for (s, u), k in posted.items()])
    conn.execute(_STREAM_COMMENTS, list(totals.values()))
    return 3 * len(envs)


BATCH_HANDLERS: dict[str, BatchHandler] = {"streams.ViewerJoined": joins, "streams.CommentPosted": comments}
