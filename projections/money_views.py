"""Read queries over the money read models (wallets, gifts, leaderboards, earnings, payouts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from spaktok.commands.gifts import usd
from spaktok.projections.streams_views import to_document


def get_wallet(engine: Engine, user_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT user_id, balance, purchased, spent, refunded, updated_at "
                "FROM wallets WHERE user_id = :u"
            ),
            {"u": user_id},
        ).first()
    if row is None:  # nobody bought coins yet: an empty wallet, not a 404
        return {"userId": user_id, "balance": 0, "purchased": 0, "spent": 0, "refunded": 0, "updatedAt": None}
    return to_document(row)


def wallet_transactions(
    engine: Engine, user_id: str, *, before: int | None, limit: int
) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT kind, coins, balance, payment_ref, gift_tx, stream_id, occurred_at, sequence "
                "FROM coin_transactions WHERE user_id = :u AND (CAST(:b AS bigint) IS NULL OR sequence < :b) "
                "ORDER BY sequence DESC LIMIT :n"
            ),
            {"u": user_id, "b": before, "n": limit},
        )
        return [to_document(r) for r in rows]


def top_gifters(engine: Engine, stream_id: str, limit: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_id, username, coins, gifts FROM stream_gifters WHERE stream_id = :s "
                "ORDER BY coins DESC, last_gift_at, user_id LIMIT :n"
            ),
            {"s": stream_id, "n": limit},
        )
        return [{"rank": i + 1, **to_document(r)} for i, r in enumerate(rows)]


def top_viewers(engine: Engine, stream_id: str, limit: int) -> list[dict[str, Any]]:
    """By watch time: the past visits' total plus the running visit of a viewer still watching."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_id, username, watch_time + CASE WHEN is_active THEN "
                "GREATEST(0, EXTRACT(EPOCH FROM (last_heartbeat - joined_at)))::bigint ELSE 0 END "
                "AS watch_time, "
                "gifts_sent FROM stream_viewers WHERE stream_id = :s ORDER BY 3 DESC, user_id LIMIT :n"
            ),
            {"s": stream_id, "n": limit},
        )
        return [{"rank": i + 1, **to_document(r)} for i, r in enumerate(rows)]


def get_earnings(engine: Engine, broadcaster_id: str, coin_value_usd: str, limit: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT balance, reserved, total_earned, paid_out FROM earnings WHERE broadcaster_id = :o"),
            {"o": broadcaster_id},
        ).first()
        history = conn.execute(
            text(
                "SELECT kind, coins, balance, stream_id, gift_tx, payout_id, occurred_at, sequence "
                "FROM earnings_history WHERE broadcaster_id = :o ORDER BY sequence DESC LIMIT :n"
            ),
            {"o": broadcaster_id, "n": limit},
        )
        entries = [to_document(r) for r in history]
    balance, reserved, earned, paid = row if row is not None else (0, 0, 0, 0)
    return {
        "broadcasterId": broadcaster_id,
        "balanceCoins": balance,
        "balanceUsd": usd(balance, coin_value_usd),
        "reservedCoins": reserved,
        "reservedUsd": usd(reserved, coin_value_usd),
        "totalEarnedCoins": earned,
        "totalEarnedUsd": usd(earned, coin_value_usd),
        "paidOutCoins": paid,
        "paidOutUsd": usd(paid, coin_value_usd),
        "coinValueUsd": coin_value_usd,
        "history": entries,
    }


_PAYOUT_COLUMNS = (
    "payout_id, broadcaster_id, method, coins, amount_usd::text AS amount_usd, status, provider_ref, "
    "failure_reason, requested_at, settled_at"
)


def list_payouts(engine: Engine, broadcaster_id: str, limit: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT {_PAYOUT_COLUMNS} FROM payouts WHERE broadcaster_id = :o "
                "ORDER BY requested_at DESC, payout_id LIMIT :n"
            ),
            {"o": broadcaster_id, "n": limit},
        )
        return [to_document(r) for r in rows]


def get_payout(engine: Engine, payout_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT {_PAYOUT_COLUMNS} FROM payouts WHERE payout_id = :p"), {"p": payout_id}
        ).first()
    return to_document(row) if row is not None else None
