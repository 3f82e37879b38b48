"""Postgres read model of a channel's moderators (issue #18): the `channel_moderators` table, and the
set each live stream holds (`live_streams.channel_moderators`, which the access policy reads)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from spaktok.events.broadcasters import ChannelModeratorAdded, ChannelModeratorRemoved
from spaktok.events.envelope import Envelope
from spaktok.events.streams import ChannelModeratorsChanged


def _added(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, ChannelModeratorAdded)
    conn.execute(
        text(
            "INSERT INTO channel_moderators (channel_id, moderator_id, added_at) VALUES (:c, :m, :at) "
            "ON CONFLICT DO NOTHING"
        ),
        {"c": env.aggregate_id, "m": e.moderator_id, "at": e.added_at},
    )
    return 1


def _removed(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, ChannelModeratorRemoved)
    conn.execute(
        text("DELETE FROM channel_moderators WHERE channel_id = :c AND moderator_id = :m"),
        {"c": env.aggregate_id, "m": e.moderator_id},
    )
    return 1


def _stream_changed(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, ChannelModeratorsChanged)
    conn.execute(
        text(
            "UPDATE live_streams SET channel_moderators = CAST(:m AS text[]), last_updated = :at "
            "WHERE stream_id = :s"
        ),
        {"m": e.moderators, "at": e.changed_at, "s": env.aggregate_id},
    )
    return 1


HANDLERS: dict[str, Callable[[Connection, Envelope], int]] = {
    "broadcasters.ChannelModeratorAdded": _added,
    "broadcasters.ChannelModeratorRemoved": _removed,
    "streams.ChannelModeratorsChanged": _stream_changed,
}
