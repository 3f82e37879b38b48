"""Realistic example events for the published contracts (schemas/events/, the AsyncAPI document).

Eighty-odd event types share a few dozen field names, so one factory builds every example from a
table of values by field name (the same stream, broadcaster, fan and gift throughout, with amounts
that add up: a 2 x doughnut send of 60 coins split 30/30 under the 50 % rule), a few per-type
overrides where a name means something else, and the model's own validation as the last word: an
example that the model refuses fails generation, so a published example is always a real event.

Everything is fixed (ids, times): the generated files must be byte-for-byte reproducible.
"""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel

from spaktok.events.base import Event
from spaktok.events.envelope import Envelope, derive_id

M = TypeVar("M", bound=BaseModel)
AT = datetime(2026, 12, 2, 20, 15, 30, tzinfo=UTC)
STREAM = "st_5f0c2a9e81b34d7c9a1e6b20"
OPPONENT_STREAM = "st_91d4e7a0c3b2458f8e6d1a37"
HOST = "u_hostess_ana"
OPPONENT = "u_dj_marco"
AT_MS = int(AT.timestamp() * 1000)
FAN = "u_fan_lea"
MODERATOR = "u_mod_sam"
COMMAND = "c1f3a9b2-7d45-4e8a-9b61-3f2d8c0e5a17"  # the Idempotency-Key of the example's request
GIFT_TX = "tx_" + derive_id(COMMAND, "gift").replace("-", "")[:24]

BY_NAME: dict[str, Any] = {
    # who and where
    "stream_id": STREAM,
    "shard": 2,  # of a hot stream's like shards
    "shard_likes": 120,
    "totals": {"2": 120},
    "stream1_id": STREAM,
    "stream2_id": OPPONENT_STREAM,
    "opponent_stream_id": OPPONENT_STREAM,
    "winner_stream_id": STREAM,
    "channel_id": HOST,
    "broadcaster1_id": HOST,
    "broadcaster1_name": "Ana Live",
    "broadcaster2_id": OPPONENT,
    "opponent_user_id": OPPONENT,
    "winner_id": HOST,
    "receiver_id": HOST,
    "receiver_username": "Ana Live",
    "followee_id": HOST,
    "user_id": FAN,
    "sender_id": FAN,
    "sender_username": "Lea",
    "follower_id": FAN,
    "reporter_id": FAN,
    "username": "Lea",
    "actor_name": "Ana Live",
    "moderator_id": MODERATOR,
    "by": MODERATOR,
    "deleted_by": MODERATOR,
    "pinned_by": HOST,
    "unpinned_by": HOST,
    "resolved_by": "u_trust_safety_kim",
    "suspended_by": "u_trust_safety_kim",
    "reinstated_by": "u_trust_safety_kim",
    "moderators": [MODERATOR],
    "channel_moderators": [MODERATOR],
    "guests": [OPPONENT],
    "recipients": [FAN, "u_fan_noah", "u_fan_mia"],
    "allowed_user_ids": [],
    # ids of things
    "battle_id": "pk_3b8e1f6a2c9d4e07b5a1",
    "comment_id": "cm_8a21f0c4d9e3",
    "previous_comment_id": None,
    "schedule_id": "sc_6d0b9e2f4a71",
    "notification_id": "nt_" + derive_id(COMMAND, "notify").replace("-", "")[:24],
    "payout_id": "po_2f7c9a1e5b3d",
    "payment_ref": "pay_4242_20261202_0017",
    "provider_ref": "pp_7HX29341KL",
    "recording_id": "rec_5f0c2a9e_1",
    "report_id": "rp_0c4e8b2a6f19",
    "gift_tx": GIFT_TX,
    "send_id": COMMAND,
    "action_ids": ["lk_01", "lk_02"],
    "rejected_action_ids": [],
    # gifts and money: 2 x doughnut (30 coins each) by a fan to a non-premium broadcaster
    "gift_id": "doughnut",
    "gift_name": "Doughnut",
    "gift_image_url": "https://cdn.spaktok.dev/gifts/doughnut.png",
    "gift_animation_url": "https://cdn.spaktok.dev/gifts/doughnut.json",
    "count": 2,
    "coin_cost": 60,
    "coins": 60,
    "real_value_usd": "0.60",
    "amount_usd": "0.60",
    "broadcaster_share": 30,
    "platform_share": 30,
    "is_premium_broadcaster": False,
    "revenue_rule": "spec-6.1-v1",
    "is_combo": True,
    "combo_id": "cb_" + derive_id(COMMAND, "combo").replace("-", "")[:12],
    "combo_count": 3,
    "sender_total_coins": 90,
    "gifts": 3,
    "gift_revenue": 90,
    "revenue": 90,
    "wallet_seq": 3,
    "seq": 3,
    "balance": 410,
    "reserved": 0,
    "stream_sequence": 42,
    "winner_bonus": 0,
    "score1": 90,
    "score2": 45,
    # the stream
    "title": "Friday night lo-fi & chat",
    "description": "Beats, requests and a doughnut or two",
    "category": "music",
    "tags": ["lofi", "chill"],
    "language": "en",
    "privacy": "public",
    "quality": "1080p",
    "thumbnail": None,
    "thumbnail_url": "https://cdn.spaktok.dev/thumbs/st_5f0c2a9e.jpg",
    "ingest_url": "rtmp://ingest.spaktok.dev/live",
    "playback_url": "https://live.spaktok.dev/hls/st_5f0c2a9e81b34d7c9a1e6b20/index.m3u8",
    "path": "/var/lib/spaktok/recordings/st_5f0c2a9e81b34d7c9a1e6b20-1.flv",
    "renditions": ["1080p", "720p", "480p"],
    "location": {"city": "Lisbon", "lat": 38.72, "lng": -9.14},
    "country": "PT",
    "age_bucket": "25-34",
    "text": "that drop was 🔥",
    "note": "spam in chat, resolved",
    "reason": "spam",
    "detail": "the stream is not live",
    "command_type": "streams.PostComment",
    "changes": {"title": "Friday night lo-fi & chat"},
    "warnings": [],
    "role": "moderator",
    "kind": "stream_started",
    "side": 1,
    "method": "paypal",
    "source": "gift",
    # counts and figures
    "viewer_count": 128,
    "peak_viewer_count": 311,
    "total_views": 1_204,
    "likes": 5_870,
    "total_likes": 5_870,
    "comments": 342,
    "watch_time": 1_260,
    "duration": 5_400,
    "report_round": 1,
    "reporters": 3,
    "reporters_in_window": 3,
    "generation": 1,
    "lead_s": 900,
    "window_s": 5,
    "bitrate_kbps": 4_500,
    "frame_rate": 30.0,
    "dropped_frames": 0,
    "keyframe_interval_s": 2.0,
    "speed": 1.0,
    "width": 1920,
    "height": 1080,
    "size_bytes": 734_003_200,
    "top_gifters": [{"user_id": FAN, "coins": 90, "gifts": 3}],
    "top_viewers": [{"user_id": FAN, "watch_time": 1_260}],
    "user_profile_image": "https://cdn.spaktok.dev/avatars/u_fan_lea.jpg",
    "sender_profile_image": "https://cdn.spaktok.dev/avatars/u_fan_lea.jpg",
    # commands
    "command_id": COMMAND,
    "correlation_id": COMMAND,
    "actor_id": FAN,
    "issued_at": AT,
    "coin_value_usd": "0.01",
}

# where a field name means something else in one event type
OVERRIDES: dict[str, dict[str, Any]] = {
    "streams.LikesRecorded": {"likes": {FAN: 12, "u_fan_noah": 3}, "count": 15},
    "stream_shards.ShardLikesRecorded": {"likes": {FAN: 12, "u_fan_noah": 3}, "count": 15},
    "streams.ShardLikesFolded": {"count": 15},
    "stream_shards.RecordShardLikes": {"likes": [("k_like_1", FAN, 12), ("k_like_2", "u_fan_noah", 3)]},
    "streams.HeartbeatsRecorded": {"beats": {FAN: AT, "u_fan_noah": AT}},
    "stream_shards.ShardHeartbeatsRecorded": {"beats": {FAN: AT, "u_fan_noah": AT}, "count": 2},
    "stream_shards.RecordShardHeartbeats": {"beats": [(FAN, AT_MS), ("u_fan_noah", AT_MS)]},
    "stream_shards.ShardViewersChanged": {"joined": {FAN: AT}, "left": ["u_fan_noah"]},
    "stream_shards.ChangeShardViewers": {"changes": [(FAN, AT_MS), ("u_fan_noah", None)]},
    "stream_shards.ShardViewersTimedOut": {
        "visits": {FAN: (AT_MS - 600_000, AT_MS - 130_000)},
        "swept_at": AT,
    },
    "streams.TimeOutViewers": {"visits": {FAN: (AT_MS - 600_000, AT_MS - 130_000)}},
    "streams.IngestHealthSampled": {"window_s": 5.0},
    "streams.StreamAnalyticsRecorded": {"duration": 5_400},
    "streams.CommandRejected": {"command_type": "streams.SendGift", "reason": "stream-not-live"},
    "streams.GiftRefused": {"reason": "stream-not-live"},
    "streams.CommentPosted": {"comment_type": "text"},
    "streams.StreamReported": {"reason": "spam"},
    "streams.ReportsResolved": {"action": "dismiss"},
    "streams.ModerationNotified": {"kind": "stream_flagged", "recipients": ["role:moderation"]},
    "wallets.GiftRefunded": {"reason": "stream-not-live", "balance": 470},
    "wallets.CoinsPurchased": {"coins": 500, "balance": 500},
    "earnings.EarningsCredited": {"coins": 30, "balance": 30},
    "earnings.PayoutRequested": {
        "coins": 10_000,
        "amount_usd": "100.00",
        "balance": 2_450,
        "reserved": 10_000,
    },
    "earnings.PayoutCompleted": {"coins": 10_000, "balance": 2_450, "reserved": 0},
    "earnings.PayoutFailed": {"coins": 10_000, "balance": 12_450, "reserved": 0},
    "battles.BattleNotified": {"kind": "pk_invited", "recipients": [OPPONENT]},
    "schedules.RemindersNotified": {"kind": "schedule_reminder"},
    "audiences.FollowersNotified": {"kind": "stream_started", "schedule_id": None},
}


def example_event(cls: type[Event]) -> Event:
    """One realistic instance of `cls`, validated by the model itself."""
    return example_model(cls)


def example_model(cls: type[M]) -> M:
    """A realistic instance of any wire model with a literal `type` (events, commands)."""
    wire = cls.model_fields["type"].default
    overrides = OVERRIDES.get(wire, {})
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        if name == "type":
            continue
        if name in overrides:
            values[name] = overrides[name]
        elif name in BY_NAME:
            values[name] = _fit(name, BY_NAME[name], field.annotation)
        else:
            values[name] = _by_type(name, field.annotation)
    return cls.model_validate(values)


def example_envelope(cls: type[Event], sequence: int = 42) -> Envelope:
    """The example event as it travels: sealed like the worker seals it (ids from the command)."""
    event = example_event(cls)
    refusal = wire_name(cls).endswith(".CommandRejected")
    index = "notice-0" if cls.notice else "rejected" if refusal else 0  # as processors.core seals
    return Envelope(
        event_id=derive_id(COMMAND, index),
        type=event.type,
        schema_version=cls.schema_version,
        aggregate_type=cls.aggregate_type,
        aggregate_id=_aggregate_id(cls),
        sequence=0 if cls.notice or refusal else sequence,
        occurred_at=AT,
        causation_id=COMMAND,
        correlation_id=COMMAND,
        actor_id=FAN,
        payload=event.model_dump(mode="json", exclude={"type"}),
    )


def wire_name(cls: type[Event]) -> str:
    return str(cls.model_fields["type"].default)


def _aggregate_id(cls: type[Event]) -> str:
    """The record's key: the id of the aggregate that decided the event."""
    ids: dict[str, str] = {
        "stream": STREAM,
        "broadcaster": HOST,
        "audience": f"{HOST}:3",
        "schedule": BY_NAME["schedule_id"],
        "wallet": FAN,
        "earnings": HOST,
        "battle": BY_NAME["battle_id"],
        "stream_shard": f"{STREAM}:{BY_NAME['shard']}",
    }
    return ids[cls.aggregate_type]


def _fit(name: str, value: Any, annotation: Any) -> Any:
    """A table value of the right shape: a Literal field takes the value if allowed, else its first;
    a field whose type differs from the table's value (another model's meaning) gets a typed one."""
    literal = _literal_args(annotation)
    if literal:
        return value if value in literal else literal[0]
    base = _non_none(annotation)
    if value is None:
        return value if _optional(annotation) else _by_type(name, annotation)
    if (
        base in (str, int, float, bool)
        and type(value) is not base
        and not (base is float and type(value) is int)
    ):
        return _by_type(name, annotation)
    return value


def _by_type(name: str, annotation: Any) -> Any:
    """A plausible value for a field the table does not name (times, flags, optional extras)."""
    literal = _literal_args(annotation)
    if literal:
        return literal[0]
    base = _non_none(annotation)
    if base is datetime:
        offset = (
            timedelta(minutes=15)
            if name.endswith(("until", "ends_at", "expires_at", "due_at", "scheduled_for"))
            else None
        )
        return AT + offset if offset else AT
    if base is bool:
        return name not in {"is_age_restricted", "thumbnail", "is_tie", "is_premium", "resumed"}
    if base is int:
        return 1
    if base is float:
        return 1.0
    if base is str:
        return name.replace("_", "-")
    if _optional(annotation):
        return None
    if get_origin(base) is list:
        return []
    if get_origin(base) is dict:
        return {}
    raise TypeError(f"no example value for field {name!r} of type {annotation!r}: add it to BY_NAME")


def _literal_args(annotation: Any) -> tuple[Any, ...]:
    base = _non_none(annotation)
    return get_args(base) if get_origin(base) is Literal else ()


def _optional(annotation: Any) -> bool:
    return _is_union(annotation) and type(None) in get_args(annotation)


def _non_none(annotation: Any) -> Any:
    if _is_union(annotation):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (typing.Union, types.UnionType)
