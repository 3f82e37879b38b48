"""Events of a hot stream's like shards (commands/stream_shards.py)."""

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
class StreamShardCommandRejected(StreamShardEvent):
    type: Literal["stream_shards.CommandRejected"] = "stream_shards.CommandRejected"
    command_type: str
    reason: str
    detail: str
    rejected_action_ids: list[str] = []
