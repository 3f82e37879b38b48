"""Chat history beyond text comments (spec §2.3 `type`): gifts and a few public system messages.

The Postgres projection writes them into `stream_comments` from the stream's own events, next to
the text comments, each with its event's sequence, so history keeps the stream's log order. Joins
and likes stay feed-only (docs/realtime.md): at 100k viewers they would drown the history.

System messages (`system_kind`), a small public set: `stream_started`, `stream_ended` (with the
reason) and `user_banned` (what every viewer's feed already shows as a `banned` item). PK results
are not among them: they are decided on the battle's log, not the stream's, so they have no place
in this stream's order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, text

from spaktok.events.envelope import Envelope
from spaktok.events.streams import GiftReceived, StreamEnded, StreamStarted, UserBanned

Row = dict[str, Any]
Handler = Callable[[Connection, Envelope], int]

HISTORY_TYPES = ("text", "gift", "system")  # what history stores; the spec's join/like are feed-only
DEFAULT_TYPES = ("text",)  # API.md's comments: the text comments, unless `?types=` asks for more
SYSTEM_USER = "system"  # the author of system messages, as the worker's own commands are (`actor_id`)

INSERT_MESSAGE = text(
    """INSERT INTO stream_comments (comment_id, stream_id, user_id, username, user_profile_image, text,
        type, gift_id, gift_name, gift_count, coin_cost, combo_count, system_kind, subject_id,
        "timestamp", sequence)
    VALUES (:comment_id, :stream_id, :user_id, :username, :user_profile_image, :text, :type, :gift_id,
        :gift_name, :gift_count, :coin_cost, :combo_count, :system_kind, :subject_id, :timestamp,
        :sequence)
    ON CONFLICT (comment_id) DO NOTHING"""
)


def gift_message(env: Envelope) -> Row:
    """A delivered gift as a history row; its id is the gift transaction's."""
    e = env.event()
    assert isinstance(e, GiftReceived)
    label = f"sent {e.gift_name}" + (f" x{e.count}" if e.count > 1 else "")
    return _row(
        env,
        comment_id=e.gift_tx,
        user_id=e.sender_id,
        username=e.sender_username,
        user_profile_image=e.sender_profile_image,
        text=label,
        type="gift",
        gift_id=e.gift_id,
        gift_name=e.gift_name,
        gift_count=e.count,
        coin_cost=e.coin_cost,
        combo_count=e.combo_count,
        timestamp=e.sent_at,
    )


def system_message(env: Envelope) -> Row:
    """A stream start, end or ban as a history row; its id is the event's."""
    e = env.event()
    match e:
        case StreamStarted():
            kind, subject, words, at = (
                "stream_started",
                e.user_id,
                f"{e.username} started the stream",
                e.started_at,
            )
        case StreamEnded():
            kind, subject, words, at = "stream_ended", None, f"the stream ended ({e.reason})", e.ended_at
        case UserBanned():
            kind, subject, words, at = (
                "user_banned",
                e.user_id,
                "a user was removed from the chat",
                e.banned_at,
            )
        case _:
            raise TypeError(f"no system message for {env.type}")
    return _row(
        env,
        comment_id=env.event_id,
        user_id=SYSTEM_USER,
        username=SYSTEM_USER,
        text=words,
        type="system",
        system_kind=kind,
        subject_id=subject,
        timestamp=at,
    )


SYSTEM_EVENTS = ("streams.StreamStarted", "streams.StreamEnded", "streams.UserBanned")


def _row(env: Envelope, **values: Any) -> Row:
    row: Row = dict.fromkeys(
        ("user_profile_image", "gift_id", "gift_name", "gift_count", "coin_cost", "combo_count"),
    )
    row.update(system_kind=None, subject_id=None, stream_id=env.aggregate_id, sequence=env.sequence)
    row.update(values)
    return row


def with_system_messages(handlers: dict[str, Handler]) -> dict[str, Handler]:
    """The projector's handlers, those of the system-message events also writing their message."""

    def wrap(handler: Handler) -> Handler:
        def handle(conn: Connection, env: Envelope) -> int:
            written = handler(conn, env)
            conn.execute(INSERT_MESSAGE, system_message(env))
            return written + 1

        return handle

    return {kind: wrap(h) if kind in SYSTEM_EVENTS else h for kind, h in handlers.items()}
