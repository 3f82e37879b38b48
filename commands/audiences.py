"""Commands on a channel's audience shards, all sent by processors (follows, stream starts).

A popular channel has millions of followers: its follower set is split into AUDIENCE_SHARDS
aggregates (`{channel}:{shard}`, a follower's shard fixed by a hash of their id), so a follow
rewrites one shard and a stream start fans out as one notify command per shard, in parallel
across partitions.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Literal

from pydantic import Field

from spaktok.commands.base import Command, register_command
from spaktok.events.audiences import NoticeKind

AUDIENCE_SHARDS = 16  # fixed: changing it would need the shards rebuilt from the follow events


def shard_of(follower_id: str) -> int:
    return (
        int.from_bytes(hashlib.blake2b(follower_id.encode(), digest_size=4).digest(), "big") % AUDIENCE_SHARDS
    )


def audience_id(channel_id: str, shard: int) -> str:
    return f"{channel_id}:{shard}"


class AudienceCommand(Command):
    aggregate_type: ClassVar[str] = "audience"
    channel_id: str = Field(min_length=1, max_length=128)
    shard: int = Field(ge=0, lt=AUDIENCE_SHARDS)

    @property
    def aggregate_id(self) -> str:
        return audience_id(self.channel_id, self.shard)


@register_command
class AddFollower(AudienceCommand):
    type: Literal["audiences.AddFollower"] = "audiences.AddFollower"
    follower_id: str


@register_command
class RemoveFollower(AudienceCommand):
    type: Literal["audiences.RemoveFollower"] = "audiences.RemoveFollower"
    follower_id: str


@register_command
class NotifyFollowers(AudienceCommand):
    type: Literal["audiences.NotifyFollowers"] = "audiences.NotifyFollowers"
    notification_id: str
    kind: NoticeKind = "stream_started"
    stream_id: str | None = None
    schedule_id: str | None = None
    title: str
    actor_name: str
