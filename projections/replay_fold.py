"""The replay's fast path: the high-volume events folded into rows in memory, written with COPY.

Each fold below is the in-memory twin of one SQL handler (named in its docstring) and must do
exactly what that statement does to the row; `tests/integration/test_replay.py` compares the tables
rebuilt this way, and those rebuilt by the SQL handlers alone, with the live ones row for row.
Every other event type goes through its SQL handler: before it runs, the rows in
memory are written out and forgotten, so the handler sees (and may change) the true tables; later
folds read back from Postgres the rows they need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spaktok.events.envelope import Envelope
from spaktok.events.streams import GiftReceived
from spaktok.projections import chat_history, moderation
from spaktok.projections.row_store import Row, RowStore

Fold = Callable[[RowStore, Envelope], int]


def _stream_update(store: RowStore, stream_id: str, **values: Any) -> None:
    """`UPDATE live_streams SET ... WHERE stream_id = :s` (no row: no effect)."""
    row = store.get("live_streams", (stream_id,))
    if row is not None:
        row.update(values)
        store.touch("live_streams", (stream_id,))


def _started(store: RowStore, env: Envelope) -> int:
    """streams._started: INSERT ... ON CONFLICT DO NOTHING."""
    e: Any = env.event()
    key = (e.stream_id,)
    if store.get("live_streams", key) is not None:
        return 1
    store.new(
        "live_streams",
        key,
        stream_id=e.stream_id,
        user_id=e.user_id,
        username=e.username,
        user_profile_image=e.user_profile_image,
        title=e.title,
        category=e.category,
        tags=list(e.tags),
        language=e.language,
        privacy=e.privacy,
        status="live",
        stream_url=e.ingest_url,
        playback_url=e.playback_url,
        is_recorded=e.is_recorded,
        is_premium=e.is_premium,
        is_age_restricted=e.is_age_restricted,
        allow_comments=e.allow_comments,
        allow_gifts=e.allow_gifts,
        quality=e.quality,
        location=e.location,
        schedule_id=e.schedule_id,
        started_at=e.started_at,
        created_at=e.started_at,
        last_updated=e.started_at,
        allowed_user_ids=list(e.allowed_user_ids),
        channel_moderators=list(e.channel_moderators),
        like_shards=e.like_shards,
    )
    return 1


def _joined(store: RowStore, env: Envelope) -> int:
    """stream_runs.joins: upsert the viewer, then the stream's counters."""
    e: Any = env.event()
    key = (env.aggregate_id, e.user_id)
    row = store.get("stream_viewers", key)
    if row is None:
        store.new(
            "stream_viewers",
            key,
            stream_id=env.aggregate_id,
            user_id=e.user_id,
            username=e.username,
            user_profile_image=e.user_profile_image,
            joined_at=e.joined_at,
            is_active=True,
            last_heartbeat=e.joined_at,
        )
    else:
        row.update(
            is_active=True,
            joined_at=e.joined_at,
            left_at=None,
            last_heartbeat=max(row["last_heartbeat"], e.joined_at),
            username=e.username,
            user_profile_image=e.user_profile_image,
        )
        store.touch("stream_viewers", key)
    _stream_update(
        store,
        env.aggregate_id,
        viewer_count=e.viewer_count,
        peak_viewer_count=e.peak_viewer_count,
        total_views=e.total_views,
        last_updated=e.joined_at,
    )
    return 2


def _left(store: RowStore, env: Envelope) -> int:
    """stream_runs.leaves."""
    e: Any = env.event()
    key = (env.aggregate_id, e.user_id)
    row = store.get("stream_viewers", key)
    if row is not None:
        row.update(is_active=False, left_at=e.left_at, watch_time=e.watch_time)
        store.touch("stream_viewers", key)
    _stream_update(store, env.aggregate_id, viewer_count=e.viewer_count, last_updated=e.left_at)
    return 2


def _heartbeats(store: RowStore, env: Envelope) -> int:
    """stream_runs.heartbeats: last_heartbeat = GREATEST(last_heartbeat, at) of active viewers."""
    e: Any = env.event()
    for user, at in e.beats.items():
        key = (env.aggregate_id, user)
        row = store.get("stream_viewers", key)
        if row is not None and row["is_active"]:
            if at > row["last_heartbeat"]:
                row["last_heartbeat"] = at
                store.touch("stream_viewers", key)
    return len(e.beats)


def _shard_heartbeats(store: RowStore, env: Envelope) -> int:
    """streams._shard_heartbeats: last_heartbeat = GREATEST(last_heartbeat, at), a placeholder row
    for a viewer whose join is not here yet."""
    e: Any = env.event()
    for user, at in e.beats.items():
        key = (e.stream_id, user)
        row = store.get("stream_viewers", key)
        if row is None:
            store.new(
                "stream_viewers",
                key,
                stream_id=e.stream_id,
                user_id=user,
                username="",
                joined_at=at,
                is_active=False,
                last_heartbeat=at,
            )
        elif at > row["last_heartbeat"]:
            row["last_heartbeat"] = at
            store.touch("stream_viewers", key)
    return len(e.beats)


def _comment(store: RowStore, env: Envelope) -> int:
    """stream_runs.comments: the comment (if new), the viewer's count, the stream's count."""
    e: Any = env.event()
    if store.get("stream_comments", (e.comment_id,)) is None:
        store.new(
            "stream_comments",
            (e.comment_id,),
            comment_id=e.comment_id,
            stream_id=env.aggregate_id,
            user_id=e.user_id,
            username=e.username,
            user_profile_image=e.user_profile_image,
            text=e.text,
            type=e.comment_type,
            timestamp=e.posted_at,
            sequence=env.sequence,
        )
    viewer = store.get("stream_viewers", (env.aggregate_id, e.user_id))
    if viewer is not None:
        viewer["comments_posted"] += 1
        store.touch("stream_viewers", (env.aggregate_id, e.user_id))
    _stream_update(store, env.aggregate_id, comments=e.comments, last_updated=e.posted_at)
    return 3


def _likes(store: RowStore, env: Envelope) -> int:
    """stream_runs.likes: per user like_count += taps, timestamp = the batch's time."""
    e: Any = env.event()
    _likers(store, env.aggregate_id, e.likes, e.recorded_at)
    _stream_update(store, env.aggregate_id, likes=e.total_likes, last_updated=e.recorded_at)
    return len(e.likes) + 1


def _shard_likes(store: RowStore, env: Envelope) -> int:
    """streams._shard_likes: a hot stream's likers, counted by its shards."""
    e: Any = env.event()
    _likers(store, e.stream_id, e.likes, e.recorded_at)
    return len(e.likes)


def _shard_likes_folded(store: RowStore, env: Envelope) -> int:
    """streams._shard_likes_folded: the stream's total, folded from its shards."""
    e: Any = env.event()
    _stream_update(store, env.aggregate_id, likes=e.total_likes, last_updated=e.folded_at)
    return 1


def _likers(store: RowStore, stream_id: str, likes: dict[str, int], at: Any) -> None:
    for user, taps in likes.items():
        key = (stream_id, user)
        row = store.get("stream_likes", key)
        if row is None:
            store.new("stream_likes", key, stream_id=stream_id, user_id=user, like_count=taps, timestamp=at)
        else:
            row["like_count"] += taps
            row["timestamp"] = at
            store.touch("stream_likes", key)


def _ended(store: RowStore, env: Envelope) -> int:
    """streams._ended."""
    e: Any = env.event()
    row = store.get("live_streams", (env.aggregate_id,))
    if row is not None:
        row.update(
            status="ended",
            ended_at=e.ended_at,
            duration=e.duration,
            viewer_count=0,
            peak_viewer_count=e.peak_viewer_count,
            total_views=e.total_views,
            likes=e.likes,
            comments=e.comments,
            gifts=e.gifts,
            gift_revenue=e.gift_revenue,
            last_updated=e.ended_at,
            end_reason=e.reason,
            ingest_status="waiting" if row["ingest_status"] == "waiting" else "stopped",
        )
        store.touch("live_streams", (env.aggregate_id,))
    # the moderation log is not held in memory: its one row goes straight to Postgres
    return 1 + moderation.log_moderated_end(store.conn, env, e)


GIFT_EXCLUDE = {"type", "sender_profile_image", "wallet_seq", "sender_total_coins", "gifts", "gift_revenue"}


def _gift_received(store: RowStore, env: Envelope) -> int:
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
    _stream_update(
        store, env.aggregate_id, gifts=e.gifts, gift_revenue=e.gift_revenue, last_updated=e.sent_at
    )
    viewer = store.get("stream_viewers", key)
    if viewer is not None:
        viewer["gifts_sent"] += e.count
        store.touch("stream_viewers", key)
    return 4 + _message(store, chat_history.gift_message(env))


def _message(store: RowStore, row: Row) -> int:
    """chat_history.INSERT_MESSAGE: a history message (if new)."""
    if store.get("stream_comments", (row["comment_id"],)) is not None:
        return 0
    store.new("stream_comments", (row["comment_id"],), **row)
    return 1


def _wallet(store: RowStore, env: Envelope) -> int:
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


def _credited(store: RowStore, env: Envelope) -> int:
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


def _with_system_message(fold: Fold) -> Fold:
    """chat_history.with_system_messages: the event's fold, then its system message (if new)."""

    def folded(store: RowStore, env: Envelope) -> int:
        return fold(store, env) + _message(store, chat_history.system_message(env))

    return folded


FOLDS: dict[str, Fold] = {
    "streams.StreamStarted": _with_system_message(_started),
    "streams.ViewerJoined": _joined,
    "streams.ViewerLeft": _left,
    "streams.HeartbeatsRecorded": _heartbeats,
    "streams.CommentPosted": _comment,
    "streams.LikesRecorded": _likes,
    "streams.ShardLikesFolded": _shard_likes_folded,
    "stream_shards.ShardLikesRecorded": _shard_likes,
    "stream_shards.ShardHeartbeatsRecorded": _shard_heartbeats,
    "streams.StreamEnded": _with_system_message(_ended),
    "streams.GiftReceived": _gift_received,
    "wallets.CoinsPurchased": _wallet,
    "wallets.GiftDebited": _wallet,
    "wallets.GiftRefunded": _wallet,
    "earnings.EarningsCredited": _credited,
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
