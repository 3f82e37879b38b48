"""The replay's folds of money: a delivered gift's rows, the wallets and the earnings, each the
in-memory twin of one SQL handler of projections/money.py, named in its docstring
(projections/replay_fold.py says how they are used)."""

from __future__ import annotations

from typing import Any

from spaktok.events.envelope import Envelope
from spaktok.events.streams import GiftReceived
from spaktok.projections import chat_history
from spaktok.projections.replay_fold_streams import message, stream_update
from spaktok.projections.row_store import RowStore

GIFT_EXCLUDE = {"type", "sender_profile_image", "wallet_seq", "sender_total_coins", "gifts", "gift_revenue"}


def gift_received(store: RowStore, env: Envelope) -> int:
    """money._gifts_received: the gift row (if new), the leaderboard, the stream, the viewer."""
    e = env.event()
    assert isinstance(e, GiftReceived)
    if store.get("stream_gifts", (e.gift_tx,)) is None:
        row = e.model_dump(exclude=GIFT_EXCLUDE)
        row["timestamp"] = row.pop("sent_at")
        row["stream_id"] = env.aggregate_id
        store.new("stream_gifts", (e.gift_tx,), **row)
    key = (env.aggregate_id, e.sender_id)
    gifter = store.get("stream_gifters", key)
    if gifter is None:
        store.new(
            "stream_gifters",
            key,
            stream_id=env.aggregate_id,
            user_id=e.sender_id,
            username=e.sender_username,
            coins=e.sender_total_coins,
            gifts=e.count,
            last_gift_at=e.sent_at,
        )
    else:
        gifter.update(
            username=e.sender_username,
            coins=e.sender_total_coins,
            gifts=gifter["gifts"] + e.count,
            last_gift_at=e.sent_at,
        )
        store.touch("stream_gifters", key)
    stream_update(store, env.aggregate_id, gifts=e.gifts, gift_revenue=e.gift_revenue, last_updated=e.sent_at)
    viewer = store.get("stream_viewers", key)
    if viewer is not None:
        viewer["gifts_sent"] += e.count
        store.touch("stream_viewers", key)
    return 4 + message(store, chat_history.gift_message(env))


def wallet(store: RowStore, env: Envelope) -> int:
    """money._wallet_events: the wallet upsert and its history row (if new)."""
    e: Any = env.event()
    purchased = spent = refunded = 0
    ref = tx = stream = None
    if env.type == "wallets.CoinsPurchased":
        kind, coins, purchased, ref, at = "purchase", e.coins, e.coins, e.payment_ref, e.purchased_at
    elif env.type == "wallets.GiftDebited":
        kind, coins, spent, tx, stream, at = "gift", -e.coins, e.coins, e.gift_tx, e.stream_id, e.debited_at
    else:
        kind, coins, refunded, tx, stream, at = (
            "refund",
            e.coins,
            e.coins,
            e.gift_tx,
            e.stream_id,
            e.refunded_at,
        )
    user = env.aggregate_id
    wallet = store.get("wallets", (user,))
    if wallet is None:
        store.new(
            "wallets",
            (user,),
            user_id=user,
            balance=e.balance,
            purchased=purchased,
            spent=spent,
            refunded=refunded,
            updated_at=at,
        )
    else:
        wallet.update(
            balance=e.balance,
            purchased=wallet["purchased"] + purchased,
            spent=wallet["spent"] + spent,
            refunded=wallet["refunded"] + refunded,
            updated_at=at,
        )
        store.touch("wallets", (user,))
    if store.get("coin_transactions", (env.event_id,)) is None:
        store.new(
            "coin_transactions",
            (env.event_id,),
            event_id=env.event_id,
            user_id=user,
            kind=kind,
            coins=coins,
            balance=e.balance,
            payment_ref=ref,
            gift_tx=tx,
            stream_id=stream,
            occurred_at=at,
            sequence=env.sequence,
        )
    return 2


def credited(store: RowStore, env: Envelope) -> int:
    """money._credits (payouts take the SQL path, money._payout_event)."""
    e: Any = env.event()
    owner = env.aggregate_id
    row = store.get("earnings", (owner,))
    if row is None:
        store.new(
            "earnings",
            (owner,),
            broadcaster_id=owner,
            balance=e.balance,
            reserved=0,
            total_earned=e.coins,
            paid_out=0,
            updated_at=e.credited_at,
        )
    else:
        row.update(balance=e.balance, total_earned=row["total_earned"] + e.coins, updated_at=e.credited_at)
        store.touch("earnings", (owner,))
    if store.get("earnings_history", (env.event_id,)) is None:
        store.new(
            "earnings_history",
            (env.event_id,),
            event_id=env.event_id,
            broadcaster_id=owner,
            kind=e.source,
            coins=e.coins,
            balance=e.balance,
            stream_id=e.stream_id,
            gift_tx=e.gift_tx or None,
            payout_id=None,
            occurred_at=e.credited_at,
            sequence=env.sequence,
        )
    return 3
