"""The replay's fast path: the high-volume events folded into rows in memory, written with COPY.

Each fold below is the in-memory twin of one SQL handler (named in its docstring) and must do
exactly what that statement does to the row; `tests/integration/test_replay.py` compares the tables
rebuilt this way, and those rebuilt by the SQL handlers alone, with the live ones row for row.
Every other event type goes through its SQL handler: before it runs, the rows in
memory are written out and forgotten, so the handler sees (and may change) the true tables; later
folds read back from Postgres the rows they need.
"""

from __future__ import annotations

from typing import Any

from spaktok.events.envelope import Envelope
from spaktok.projections import replay_fold_money as money
from spaktok.projections import replay_fold_streams as streams
from spaktok.projections.replay_fold_streams import Fold
from spaktok.projections.row_store import RowStore


def _followed(store: RowStore, env: Envelope) -> int:
    """social._followed: INSERT ... ON CONFLICT DO NOTHING."""
    e: Any = env.event()
    key = (env.aggregate_id, e.followee_id)
    if store.get("follows", key) is None:
        store.new(
            "follows", key, follower_id=env.aggregate_id, followee_id=e.followee_id, followed_at=e.followed_at
        )
    return 1


def _unfollowed(store: RowStore, env: Envelope) -> int:
    """social._unfollowed: DELETE."""
    e: Any = env.event()
    key = (env.aggregate_id, e.followee_id)
    if store.get("follows", key) is not None:
        store.delete("follows", key)
    return 1


def _notified(store: RowStore, env: Envelope) -> int:
    """social._notified: one inbox row per recipient (if new)."""
    e: Any = env.event()
    written = 0
    for recipient in e.recipients:
        key = (recipient, e.notification_id)
        if store.get("notifications", key) is None:
            store.new(
                "notifications",
                key,
                recipient_id=recipient,
                notification_id=e.notification_id,
                kind=e.kind,
                channel_id=e.channel_id,
                stream_id=getattr(e, "stream_id", None),
                schedule_id=getattr(e, "schedule_id", None),
                title=e.title,
                actor_name=e.actor_name,
                created_at=e.sent_at,
            )
            written += 1
    return written


FOLDS: dict[str, Fold] = {
    "streams.StreamStarted": streams.with_system_message(streams.started),
    "streams.ViewerJoined": streams.joined,
    "streams.ViewerLeft": streams.left,
    "streams.HeartbeatsRecorded": streams.heartbeats,
    "streams.CommentPosted": streams.comment,
    "streams.LikesRecorded": streams.likes,
    "streams.ShardLikesFolded": streams.shard_likes_folded,
    "stream_shards.ShardLikesRecorded": streams.shard_likes,
    "stream_shards.ShardHeartbeatsRecorded": streams.shard_heartbeats,
    "streams.StreamEnded": streams.with_system_message(streams.ended),
    "streams.GiftReceived": money.gift_received,
    "wallets.CoinsPurchased": money.wallet,
    "wallets.GiftDebited": money.wallet,
    "wallets.GiftRefunded": money.wallet,
    "earnings.EarningsCredited": money.credited,
    "broadcasters.UserFollowed": _followed,
    "broadcasters.UserUnfollowed": _unfollowed,
    "audiences.FollowersNotified": _notified,
    "schedules.RemindersNotified": _notified,
    "streams.ModerationNotified": _notified,
    "battles.BattleNotified": _notified,
}

FOLDED_TABLES = [
    "live_streams",
    "stream_viewers",
    "stream_comments",
    "stream_likes",
    "stream_gifts",
    "stream_gifters",
    "wallets",
    "coin_transactions",
    "earnings",
    "earnings_history",
    "follows",
    "notifications",
]
