"""Events of a hot stream's shards: likes and presence (commands/stream_shards.py)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from spaktok.events.base import Event, register_event


class StreamShardEvent(Event):
    aggregate_type: ClassVar[str] = "stream_shard"


@register_event
class ShardOpened(StreamShardEvent):
    type: Literal["stream_shards.ShardOpened"] = "stream_shards.ShardOpened"
    stream_id: str
    shard: int
    owner_id: str
    opened_at: datetime


@register_event
class ShardClosed(StreamShardEvent):
    type: Literal["stream_shards.ShardClosed"] = "stream_shards.ShardClosed"
    stream_id: str
    shard: int
    closed_at: datetime


@register_event
class ShardBanSet(StreamShardEvent):
    type: Literal["stream_shards.ShardBanSet"] = "stream_shards.ShardBanSet"
    stream_id: str
    user_id: str
    banned: bool


@register_event
class ShardLikesRecorded(StreamShardEvent):
    """Likes counted by one shard: `likes` per user in this batch, `shard_likes` the shard's total."""

    type: Literal["stream_shards.ShardLikesRecorded"] = "stream_shards.ShardLikesRecorded"
    stream_id: str
    shard: int
    likes: dict[str, int]
    count: int
    shard_likes: int
    recorded_at: datetime
    action_ids: list[str] = []


@register_event
class ShardLikesHandedOver(StreamShardEvent):
    """The shard's running total `shard_likes` was forwarded to the stream (`FoldShardLikes`)."""

    type: Literal["stream_shards.ShardLikesHandedOver"] = "stream_shards.ShardLikesHandedOver"
    stream_id: str
    shard: int
    shard_likes: int


@register_event
class ShardViewersChanged(StreamShardEvent):
    """The shard's viewers after the stream's joins and leaves: `joined` (user -> when the visit
    began) are watching, `left` are not (a user's last change in the command wins)."""

    type: Literal["stream_shards.ShardViewersChanged"] = "stream_shards.ShardViewersChanged"
    stream_id: str
    shard: int
    joined: dict[str, datetime] = {}
    left: list[str] = []


@register_event
class ShardHeartbeatsRecorded(StreamShardEvent):
    """Heartbeats of the shard's viewers: each one's latest beat in the batch; `count` beats sent."""

    type: Literal["stream_shards.ShardHeartbeatsRecorded"] = "stream_shards.ShardHeartbeatsRecorded"
    stream_id: str
    shard: int
    beats: dict[str, datetime]
    count: int


@register_event
class ShardViewersTimedOut(StreamShardEvent):
    """Viewers of the shard not heard from for longer than the sweep's `silent_ms`: each one's visit
    as `[joined epoch ms, last seen epoch ms]`, forwarded to the stream, which lets them leave."""

    type: Literal["stream_shards.ShardViewersTimedOut"] = "stream_shards.ShardViewersTimedOut"
    stream_id: str
    shard: int
    visits: dict[str, tuple[int, int]]
    swept_at: datetime


@register_event
class StreamShardCommandRejected(StreamShardEvent):
    type: Literal["stream_shards.CommandRejected"] = "stream_shards.CommandRejected"
    command_type: str
    reason: str
    detail: str
    rejected_action_ids: list[str] = []
