"""Postgres read models of money: wallets, gifts, leaderboards, earnings and payouts.

Handlers of the Postgres projector: they run inside its transaction, after `fresh_records` dropped
events already applied, so every write here happens exactly once per event. Balances are copied
from the events (each carries the balance after it), never computed by adding here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, text

from spaktok.events.earnings import EarningsCredited, PayoutCompleted, PayoutFailed, PayoutRequested
from spaktok.events.envelope import Envelope
from spaktok.events.streams import GiftReceived
from spaktok.events.wallets import CoinsPurchased, GiftDebited, GiftRefunded
from spaktok.projections import chat_history
from spaktok.projections.stretches import BatchHandler, one_at_a_time

_WALLET = text(
    "INSERT INTO wallets (user_id, balance, purchased, spent, refunded, updated_at) "
    "VALUES (:u, :b, :p, :s, :r, :at) ON CONFLICT (user_id) DO UPDATE SET balance = EXCLUDED.balance, "
    "purchased = wallets.purchased + EXCLUDED.purchased, spent = wallets.spent + EXCLUDED.spent, "
    "refunded = wallets.refunded + EXCLUDED.refunded, updated_at = EXCLUDED.updated_at"
)
_TRANSACTION = text(
    "INSERT INTO coin_transactions (event_id, user_id, kind, coins, balance, payment_ref, gift_tx, "
    "stream_id, occurred_at, sequence) VALUES (:id, :u, :k, :c, :b, :ref, :tx, :s, :at, :seq) "
    "ON CONFLICT DO NOTHING"
)


def _wallet_rows(env: Envelope) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The wallet upsert and the history row of one coin movement."""
    e = env.event()
    purchased = spent = refunded = 0
    ref = tx = stream = None
    match e:
        case CoinsPurchased():
            kind, coins, purchased, ref, at = "purchase", e.coins, e.coins, e.payment_ref, e.purchased_at
        case GiftDebited():
            kind, coins, spent, tx, stream, at = (
                "gift",
                -e.coins,
                e.coins,
                e.gift_tx,
                e.stream_id,
                e.debited_at,
            )
        case GiftRefunded():
            kind, coins, refunded, tx, stream, at = (
                "refund",
                e.coins,
                e.coins,
                e.gift_tx,
                e.stream_id,
                e.refunded_at,
            )
        case _:
            return None
    user = env.aggregate_id
    return (
        {"u": user, "b": e.balance, "p": purchased, "s": spent, "r": refunded, "at": at},
        {
            "id": env.event_id,
            "u": user,
            "k": kind,
            "c": coins,
            "b": e.balance,
            "ref": ref,
            "tx": tx,
            "s": stream,
            "at": at,
            "seq": env.sequence,
        },
    )


def _wallet_events(conn: Connection, envs: list[Envelope]) -> int:
    rows = [pair for pair in map(_wallet_rows, envs) if pair is not None]
    if not rows:
        return 0
    conn.execute(_WALLET, [wallet for wallet, _ in rows])
    conn.execute(_TRANSACTION, [history for _, history in rows])
    return 2 * len(rows)


_GIFT_EXCLUDED = {"type", "sender_profile_image", "wallet_seq", "sender_total_coins", "gifts", "gift_revenue"}
# the streamGifts row: every field of the event but those above, `sent_at` as "timestamp"
_GIFT_FIELDS = [
    "timestamp" if name == "sent_at" else name
    for name in GiftReceived.model_fields
    if name not in _GIFT_EXCLUDED
] + ["stream_id"]
_GIFT_COLUMNS = ", ".join(f'"{name}"' for name in _GIFT_FIELDS)
_GIFT_VALUES = ", ".join(f":{name}" for name in _GIFT_FIELDS)
_GIFT = text(f"INSERT INTO stream_gifts ({_GIFT_COLUMNS}) VALUES ({_GIFT_VALUES}) ON CONFLICT DO NOTHING")
_GIFTER = text(
    "INSERT INTO stream_gifters (stream_id, user_id, username, coins, gifts, last_gift_at) "
    "VALUES (:s, :u, :n, :c, :g, :at) ON CONFLICT (stream_id, user_id) DO UPDATE SET "
    "username = EXCLUDED.username, coins = EXCLUDED.coins, "
    "gifts = stream_gifters.gifts + :g, last_gift_at = EXCLUDED.last_gift_at"
)
_STREAM_GIFTS = text(
    "UPDATE live_streams SET gifts = :g, gift_revenue = :r, last_updated = :at WHERE stream_id = :s"
)
_VIEWER_GIFTS = text(
    "UPDATE stream_viewers SET gifts_sent = gifts_sent + :n WHERE stream_id = :s AND user_id = :u"
)


def _gifts_received(conn: Connection, envs: list[Envelope]) -> int:
    """The gift rows, the leaderboard, the stream totals, the viewers' gifts_sent and the gift messages
    of chat history, one statement per table for the whole run (each table's writes keep the events'
    order)."""
    gifts, gifters, totals, viewers = [], [], [], []
    for env in envs:
        e = env.event()
        assert isinstance(e, GiftReceived)
        row = e.model_dump(exclude=_GIFT_EXCLUDED)
        row["timestamp"] = row.pop("sent_at")
        row["stream_id"] = env.aggregate_id
        gifts.append(row)
        gifters.append(
            {
                "s": env.aggregate_id,
                "u": e.sender_id,
                "n": e.sender_username,
                "c": e.sender_total_coins,
                "g": e.count,
                "at": e.sent_at,
            }
        )
        totals.append({"g": e.gifts, "r": e.gift_revenue, "at": e.sent_at, "s": env.aggregate_id})
        viewers.append({"n": e.count, "s": env.aggregate_id, "u": e.sender_id})
    if not envs:
        return 0
    conn.execute(_GIFT, gifts)
    conn.execute(_GIFTER, gifters)
    conn.execute(_STREAM_GIFTS, totals)
    conn.execute(_VIEWER_GIFTS, viewers)
    conn.execute(chat_history.INSERT_MESSAGE, [chat_history.gift_message(env) for env in envs])
    return 5 * len(envs)


_EARNINGS = text(
    "INSERT INTO earnings (broadcaster_id, balance, reserved, total_earned, paid_out, updated_at) "
    "VALUES (:o, COALESCE(CAST(:b AS bigint), 0), COALESCE(CAST(:r AS bigint), 0), :e, :p, :at) "
    "ON CONFLICT (broadcaster_id) DO UPDATE SET "
    "balance = COALESCE(CAST(:b AS bigint), earnings.balance), "
    "reserved = COALESCE(CAST(:r AS bigint), earnings.reserved), "
    "total_earned = earnings.total_earned + EXCLUDED.total_earned, "
    "paid_out = earnings.paid_out + EXCLUDED.paid_out, updated_at = EXCLUDED.updated_at"
)
_HISTORY = text(
    "INSERT INTO earnings_history (event_id, broadcaster_id, kind, coins, balance, stream_id, gift_tx, "
    "payout_id, occurred_at, sequence) VALUES (:id, :o, :k, :c, :b, :s, :tx, :po, :at, :seq) "
    "ON CONFLICT DO NOTHING"
)


def _credits(conn: Connection, envs: list[Envelope]) -> int:
    """A run of EarningsCredited: one upsert and one history statement for all of them."""
    figures, history = [], []
    for env in envs:
        e = env.event()
        assert isinstance(e, EarningsCredited)
        owner = env.aggregate_id
        figures.append({"o": owner, "b": e.balance, "r": None, "e": e.coins, "p": 0, "at": e.credited_at})
        history.append(
            {
                "id": env.event_id,
                "o": owner,
                "k": e.source,
                "c": e.coins,
                "b": e.balance,
                "s": e.stream_id,
                "tx": e.gift_tx or None,
                "po": None,
                "at": e.credited_at,
                "seq": env.sequence,
            }
        )
    if not envs:
        return 0
    conn.execute(_EARNINGS, figures)
    conn.execute(_HISTORY, history)
    return 2 * len(envs)


def _payout_event(conn: Connection, env: Envelope) -> int:
    """A payout's request or settlement (credits are written by `_credits`)."""
    e = env.event()
    owner = env.aggregate_id
    figures = {"o": owner, "b": None, "r": None, "e": 0, "p": 0}
    history = {"id": env.event_id, "o": owner, "s": None, "tx": None, "po": None, "seq": env.sequence}
    match e:
        case PayoutRequested():
            figures.update(b=e.balance, r=e.reserved, at=e.requested_at)
            history.update(k="payout_requested", c=-e.coins, b=e.balance, po=e.payout_id, at=e.requested_at)
            conn.execute(
                text(
                    "INSERT INTO payouts (payout_id, broadcaster_id, method, coins, amount_usd, status, "
                    "requested_at) VALUES (:po, :o, :m, :c, CAST(:usd AS numeric), 'pending', :at) "
                    "ON CONFLICT DO NOTHING"
                ),
                {
                    "po": e.payout_id,
                    "o": owner,
                    "m": e.method,
                    "c": e.coins,
                    "usd": e.amount_usd,
                    "at": e.requested_at,
                },
            )
        case PayoutCompleted():
            figures.update(r=e.reserved, p=e.coins, at=e.completed_at)
            balance = conn.execute(
                text("SELECT balance FROM earnings WHERE broadcaster_id = :o"), {"o": owner}
            ).scalar()
            history.update(k="payout_completed", c=0, b=balance or 0, po=e.payout_id, at=e.completed_at)
            conn.execute(
                text(
                    "UPDATE payouts SET status = 'completed', provider_ref = :ref, settled_at = :at "
                    "WHERE payout_id = :po"
                ),
                {"ref": e.provider_ref or None, "at": e.completed_at, "po": e.payout_id},
            )
        case PayoutFailed():
            figures.update(b=e.balance, r=e.reserved, at=e.failed_at)
            history.update(k="payout_failed", c=e.coins, b=e.balance, po=e.payout_id, at=e.failed_at)
            conn.execute(
                text(
                    "UPDATE payouts SET status = 'failed', failure_reason = :why, settled_at = :at "
                    "WHERE payout_id = :po"
                ),
                {"why": e.reason, "at": e.failed_at, "po": e.payout_id},
            )
        case _:
            return 0
    conn.execute(_EARNINGS, figures)
    conn.execute(_HISTORY, history)
    return 3


# the hot path of a gift: each handler's events of a stretch of the batch (projections/stretches.py)
# are written with one statement per table (psycopg pipelines the rows) instead of one per row
BATCH_HANDLERS: dict[str, BatchHandler] = {
    "wallets.CoinsPurchased": _wallet_events,
    "wallets.GiftDebited": _wallet_events,
    "wallets.GiftRefunded": _wallet_events,
    "streams.GiftReceived": _gifts_received,
    "earnings.EarningsCredited": _credits,
}


HANDLERS: dict[str, Callable[[Connection, Envelope], int]] = {
    **{kind: one_at_a_time(batch) for kind, batch in BATCH_HANDLERS.items()},
    "earnings.PayoutRequested": _payout_event,
    "earnings.PayoutCompleted": _payout_event,
    "earnings.PayoutFailed": _payout_event,
}
