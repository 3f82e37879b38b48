"""The stream handlers that write a run of events one statement per table (a join storm, a chat
storm, the likes, beats and leaves between them), as the money handlers do: the projector hands
each its events of a stretch of the batch (projections/stretches.py), and a lone event as a run of
one. Each event carries its stream's running figures, so a run writes each stream's figures once,
with its last values.

What lets a stretch gather a handler's events from across interleaved kinds is here too: the rows an
event's handler shares with other batch handlers (`footprint`), and the stream's figures that
several of them set (`stream_figures`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from datetime import datetime

from sqlalchemy import Connection, text

from spaktok.events.envelope import Envelope
from spaktok.events.streams import (
    CommentPosted,
    GiftReceived,
    HeartbeatsRecorded,
    LikesRecorded,
    ViewerJoined,
    ViewerLeft,
)
from spaktok.projections.stretches import BatchHandler

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


_VIEWER_LEFT = text(
    "UPDATE stream_viewers SET is_active = false, left_at = :at, watch_time = :w "
    "WHERE stream_id = :s AND user_id = :u"
)
_STREAM_VIEWERS = text("UPDATE live_streams SET viewer_count = :v, last_updated = :at WHERE stream_id = :s")


def leaves(conn: Connection, envs: list[Envelope]) -> int:
    """A run of leaves: the viewers in order, each stream's viewer count once with its last value."""
    viewers: list[dict[str, object]] = []
    counts: dict[str, dict[str, object]] = {}
    for env in envs:
        e = env.event()
        assert isinstance(e, ViewerLeft)
        s = env.aggregate_id
        viewers.append({"s": s, "u": e.user_id, "at": e.left_at, "w": e.watch_time})
        counts[s] = {"s": s, "v": e.viewer_count, "at": e.left_at}
    conn.execute(_VIEWER_LEFT, viewers)
    conn.execute(_STREAM_VIEWERS, list(counts.values()))
    return 2 * len(envs)


_UPDATE_HEARTBEATS = text(
    """UPDATE stream_viewers AS v SET last_heartbeat = GREATEST(v.last_heartbeat, b.at)
    FROM unnest(CAST(:users AS text[]), CAST(:ats AS timestamptz[])) AS b(user_id, at)
    WHERE v.stream_id = :s AND v.user_id = b.user_id AND v.is_active"""
)


def heartbeats(conn: Connection, envs: list[Envelope]) -> int:
    """A run of heartbeat batches: each event's beats in one set-based update (a row-per-statement
    executemany was 30x slower), the run's events as one executemany of those."""
    params: list[dict[str, object]] = []
    beats = 0
    for env in envs:
        e = env.event()
        assert isinstance(e, HeartbeatsRecorded)
        params.append({"s": env.aggregate_id, "users": list(e.beats), "ats": list(e.beats.values())})
        beats += len(e.beats)
    conn.execute(_UPDATE_HEARTBEATS, params)
    return beats


# the users of one event are distinct, so one upsert may touch each row only once, as Postgres requires
UPSERT_LIKES = text(
    """INSERT INTO stream_likes (stream_id, user_id, like_count, "timestamp")
    SELECT :s, l.user_id, l.taps, :at
    FROM unnest(CAST(:users AS text[]), CAST(:counts AS bigint[])) AS l(user_id, taps)
    ON CONFLICT (stream_id, user_id) DO UPDATE
    SET like_count = stream_likes.like_count + EXCLUDED.like_count, "timestamp" = EXCLUDED."timestamp" """
)
_STREAM_LIKES = text("UPDATE live_streams SET likes = :n, last_updated = :at WHERE stream_id = :s")


def likes(conn: Connection, envs: list[Envelope]) -> int:
    """A run of like batches: each event's likers in one upsert (the run's events as one executemany
    of those), each stream's total once with its last value."""
    likers: list[dict[str, object]] = []
    totals: dict[str, dict[str, object]] = {}
    users = 0
    for env in envs:
        e = env.event()
        assert isinstance(e, LikesRecorded)
        s = env.aggregate_id
        likers.append({"s": s, "users": list(e.likes), "counts": list(e.likes.values()), "at": e.recorded_at})
        totals[s] = {"s": s, "n": e.total_likes, "at": e.recorded_at}
        users += len(e.likes)
    conn.execute(UPSERT_LIKES, likers)
    conn.execute(_STREAM_LIKES, list(totals.values()))
    return users + len(envs)


BATCH_HANDLERS: dict[str, BatchHandler] = {
    "streams.ViewerJoined": joins,
    "streams.ViewerLeft": leaves,
    "streams.HeartbeatsRecorded": heartbeats,
    "streams.CommentPosted": comments,
    "streams.LikesRecorded": likes,
}


# Whether an event's batch handler writes a shared row, or only reads something of it
WRITES, READS = True, False


def footprint(env: Envelope) -> dict[Hashable, bool]:
    """What this event's batch handler reads or writes in common with other batch handlers (WRITES
    or READS, by row), so that a stretch (projections/stretches.py) keeps the order of two handlers'
    events where one writes what the other reads or writes.

    - A viewer's presence (`is_active`, `joined_at`, `left_at`): joins and leaves write it; a
      heartbeat reads it (it moves `last_heartbeat` only while the viewer is active).
    - A viewer's row: a join creates it; a comment and a gift read it (they count only where it
      exists, each in its own column).

    Everything else the batch handlers write belongs to one handler (likes, wallets, leaderboard,
    earnings), takes inserts of distinct ids (comments, gifts, history) or is a column of the
    stream's row that one handler sets (likes, comments, gifts, peak and total views), but for the
    two that several set with their event's figure: `viewer_count` (joins, leaves) and
    `last_updated`; `stream_figures` sets both once more at a stretch's end."""
    s = env.aggregate_id
    match env.event():
        case ViewerJoined(user_id=user):
            return {("presence", s, user): WRITES, ("viewer", s, user): WRITES}
        case ViewerLeft(user_id=user):
            return {("presence", s, user): WRITES}
        case HeartbeatsRecorded(beats=beats):
            return {("presence", s, user): READS for user in beats}
        case CommentPosted(user_id=user) | GiftReceived(sender_id=user):
            return {("viewer", s, user): READS}
        case _:
            return {}


def _stream_figures(env: Envelope) -> tuple[datetime, int | None] | None:
    """When an event that sets its stream's `last_updated` happened, and the viewer count it sets
    (None: it sets none); None for an event that sets neither."""
    match env.event():
        case ViewerJoined(joined_at=at, viewer_count=count) | ViewerLeft(left_at=at, viewer_count=count):
            return at, count
        case CommentPosted(posted_at=at) | LikesRecorded(recorded_at=at) | GiftReceived(sent_at=at):
            return at, None
        case _:
            return None


_STREAM_FIGURES = text(
    "UPDATE live_streams SET last_updated = :at, viewer_count = COALESCE(CAST(:v AS integer), viewer_count) "
    "WHERE stream_id = :s"
)


def stream_figures(conn: Connection, envs: list[Envelope]) -> int:
    """Each stream's `last_updated` and `viewer_count` set to those of its last event that sets
    them, in the events' order: after a stretch whose runs of several handlers each set them, the
    handler that ran last may not hold the stretch's last such event. A correction, not a row: it
    counts none."""
    figures: dict[str, dict[str, object]] = {}
    for env in envs:
        found = _stream_figures(env)
        if found is None:
            continue
        at, count = found
        last = figures.setdefault(env.aggregate_id, {"s": env.aggregate_id, "v": None})
        last["at"] = at
        if count is not None:
            last["v"] = count
    if figures:
        conn.execute(_STREAM_FIGURES, list(figures.values()))
    return 0
