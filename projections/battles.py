"""The Postgres read model of PK battles (spec §2.9) and the streams' `pkOpponentId` / `pkScore`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, text

from spaktok.events.battles import BattleInvited, BattleScored
from spaktok.events.envelope import Envelope
from spaktok.events.streams import BattleLinked
from spaktok.projections.streams_views import to_document

GIFTS_SHOWN = 500  # per side in GET /v1/pk-battles/{id}; the totals are the scores


def _invited(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, BattleInvited)
    conn.execute(
        text(
            """INSERT INTO pk_battles (battle_id, stream1_id, stream2_id, broadcaster1_id, broadcaster2_id,
                duration, status, winner_bonus, invited_at, expires_at, last_updated)
            VALUES (:b, :s1, :s2, :b1, :b2, :d, 'invited', :bonus, :at, :exp, :at)
            ON CONFLICT (battle_id) DO NOTHING"""
        ),
        {
            "b": env.aggregate_id,
            "s1": e.stream1_id,
            "s2": e.stream2_id,
            "b1": e.broadcaster1_id,
            "b2": e.broadcaster2_id,
            "d": e.duration,
            "bonus": e.winner_bonus,
            "at": e.invited_at,
            "exp": e.expires_at,
        },
    )
    return 1


def _status(status: str, **columns: Callable[[Any], Any]) -> Callable[[Connection, Envelope], int]:
    """A handler that sets the battle's status (and columns taken from the event)."""

    def handle(conn: Connection, env: Envelope) -> int:
        event = env.event()
        values = {name: pick(event) for name, pick in columns.items()}
        assignments = "".join(f", {name} = :{name}" for name in values)
        conn.execute(
            text(
                f"UPDATE pk_battles SET status = :status, last_updated = :at{assignments} "
                "WHERE battle_id = :b"
            ),
            {"b": env.aggregate_id, "status": status, "at": env.occurred_at, **values},
        )
        return 1

    return handle


def _scored(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, BattleScored)
    conn.execute(
        text(
            """INSERT INTO pk_battle_gifts (battle_id, side, stream_id, stream_sequence, gift_tx, sender_id,
                coins, sent_at) VALUES (:b, :side, :s, :seq, :tx, :sender, :coins, :at)
            ON CONFLICT DO NOTHING"""
        ),
        {
            "b": env.aggregate_id,
            "side": e.side,
            "s": e.stream_id,
            "seq": e.stream_sequence,
            "tx": e.gift_tx,
            "sender": e.sender_id,
            "coins": e.coins,
            "at": e.sent_at,
        },
    )
    conn.execute(
        text("UPDATE pk_battles SET score1 = :s1, score2 = :s2, last_updated = :at WHERE battle_id = :b"),
        {"b": env.aggregate_id, "s1": e.score1, "s2": e.score2, "at": env.occurred_at},
    )
    conn.execute(
        text("UPDATE live_streams SET pk_score = :score WHERE stream_id = :s AND pk_battle_id = :b"),
        {"s": e.stream_id, "b": env.aggregate_id, "score": e.score1 if e.side == 1 else e.score2},
    )
    return 3


def _stream_linked(conn: Connection, env: Envelope) -> int:
    e = env.event()
    assert isinstance(e, BattleLinked)
    conn.execute(
        text(
            "UPDATE live_streams SET pk_battle_id = :b, pk_opponent_id = :o, pk_score = 0, "
            "last_updated = :at WHERE stream_id = :s"
        ),
        {"s": env.aggregate_id, "b": e.battle_id, "o": e.opponent_stream_id, "at": e.linked_at},
    )
    return 1


def _stream_unlinked(conn: Connection, env: Envelope) -> int:
    conn.execute(
        text(
            "UPDATE live_streams SET pk_battle_id = NULL, pk_opponent_id = NULL, pk_score = 0, "
            "last_updated = :at WHERE stream_id = :s"
        ),
        {"s": env.aggregate_id, "at": env.occurred_at},
    )
    return 1


def _ended_columns() -> dict[str, Callable[[Any], Any]]:
    def pick(name: str) -> Callable[[Any], Any]:
        return lambda e: getattr(e, name)

    columns = ("score1", "score2", "winner_id", "winner_stream_id", "is_tie", "winner_bonus", "ended_at")
    return {**{name: pick(name) for name in columns}, "end_reason": pick("reason")}


HANDLERS: dict[str, Callable[[Connection, Envelope], int]] = {
    "battles.BattleInvited": _invited,
    "battles.BattleAccepted": _status("linking"),
    "battles.BattleDeclined": _status("declined"),
    "battles.BattleExpired": _status("expired"),
    "battles.BattleCancelled": _status("cancelled", cancel_reason=lambda e: e.reason),
    "battles.BattleStarted": _status(
        "active", started_at=lambda e: e.started_at, ends_at=lambda e: e.ends_at
    ),
    "battles.BattleScored": _scored,
    "battles.BattleClosing": _status(
        "closing", ended_at=lambda e: e.closed_at, end_reason=lambda e: e.reason
    ),
    "battles.BattleEnded": _status("ended", **_ended_columns()),
    "streams.BattleLinked": _stream_linked,
    "streams.BattleUnlinked": _stream_unlinked,
}


def get_battle(engine: Engine, battle_id: str) -> dict[str, Any] | None:
    """The spec's battle document, with each side's gifts (newest first, up to GIFTS_SHOWN)."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM pk_battles WHERE battle_id = :b"), {"b": battle_id}).first()
        if row is None:
            return None
        doc = to_document(row)
        for side in (1, 2):
            gifts = conn.execute(
                text(
                    "SELECT gift_tx, sender_id, coins, sent_at FROM pk_battle_gifts "
                    "WHERE battle_id = :b AND side = :side ORDER BY sent_at DESC, stream_sequence DESC "
                    "LIMIT :limit"
                ),
                {"b": battle_id, "side": side, "limit": GIFTS_SHOWN},
            ).fetchall()
            doc[f"gifts{side}"] = [to_document(g) for g in gifts]
    return doc
