"""The like-shard decider: one shard of a hot stream counts its viewers' likes (commands/stream_shards.py).

It applies the rules the stream applies to likes (`commands/stream/chat.py`), on what the stream told
it: the stream is live, the user is not banned, the client's action was not counted already. A
shard's like-id memory is its own: a user's likes always reach the same shard, so their retries do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from spaktok.commands.base import Command, Rejection
from spaktok.commands.stream.chat import count_likes, remember_like_ids
from spaktok.commands.stream_shards import CloseShard, OpenShard, RecordShardLikes, SetShardBan
from spaktok.events.base import Event
from spaktok.events.stream_shards import ShardBanSet, ShardClosed, ShardLikesRecorded, ShardOpened


@dataclass(frozen=True, slots=True)
class StreamShardState:
    version: int = 0
    stream_id: str = ""
    shard: int = 0
    status: Literal["none", "live", "ended"] = "none"
    owner_id: str = ""
    likes: int = 0
    banned: dict[str, None] = field(default_factory=dict)  # a set, JSON-able
    recent_like_ids: dict[str, None] = field(default_factory=dict)  # insertion-ordered: oldest first

    def stats(self) -> dict[str, Any]:
        """What a like's answer says: the stream's total is the stream's (folded from every shard)."""
        return {"status": self.status, "shard": self.shard, "shardLikes": self.likes}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "stream_id": self.stream_id,
            "shard": self.shard,
            "status": self.status,
            "owner_id": self.owner_id,
            "likes": self.likes,
            "banned": list(self.banned),
            "recent_like_ids": list(self.recent_like_ids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamShardState:
        data = dict(data)
        data["banned"] = dict.fromkeys(data.get("banned", ()))
        data["recent_like_ids"] = dict.fromkeys(data.get("recent_like_ids", ()))
        return cls(**data)


def thaw(state: StreamShardState) -> StreamShardState:
    return replace(state, banned=dict(state.banned), recent_like_ids=dict(state.recent_like_ids))


def decide(command: Command, state: StreamShardState) -> list[Event]:
    match command:
        case RecordShardLikes():
            return _likes(command, state)
        case OpenShard():
            if state.status != "none":
                return []  # a replayed forward
            return [
                ShardOpened(
                    stream_id=command.stream_id,
                    shard=command.shard,
                    owner_id=command.owner_id,
                    opened_at=command.issued_at,
                )
            ]
        case CloseShard():
            if state.status == "ended":
                return []
            return [
                ShardClosed(stream_id=command.stream_id, shard=command.shard, closed_at=command.issued_at)
            ]
        case SetShardBan():
            if (command.user_id in state.banned) == command.banned:
                return []
            return [ShardBanSet(stream_id=command.stream_id, user_id=command.user_id, banned=command.banned)]
    raise Rejection("unsupported-command", f"the stream-shard aggregate does not handle {command.type}")


def _likes(command: RecordShardLikes, state: StreamShardState) -> list[Event]:
    """The stream's rule for likes (`commands/stream/chat.py` `count_likes`) on the shard's copy of
    what it needs."""
    if state.status != "live":
        raise Rejection("stream-not-live", "the stream is not live")
    likes, action_ids = count_likes(command.likes, state.recent_like_ids, state.banned)
    if not likes:
        return []
    count = sum(likes.values())
    return [
        ShardLikesRecorded(
            stream_id=command.stream_id,
            shard=command.shard,
            likes=likes,
            count=count,
            shard_likes=state.likes + count,
            recorded_at=command.issued_at,
            action_ids=action_ids,
        )
    ]


def evolve(state: StreamShardState, event: Event) -> StreamShardState:
    """Changes a thawed state's maps in place (the like-id memory holds up to 10,000 ids)."""
    version = state.version + 1
    match event:
        case ShardOpened():
            return replace(
                state,
                version=version,
                stream_id=event.stream_id,
                shard=event.shard,
                status="live",
                owner_id=event.owner_id,
            )
        case ShardClosed():
            return replace(state, version=version, status="ended", recent_like_ids={})
        case ShardBanSet():
            if event.banned:
                state.banned[event.user_id] = None
            else:
                state.banned.pop(event.user_id, None)
            return replace(state, version=version)
        case ShardLikesRecorded():
            remember_like_ids(state.recent_like_ids, event.action_ids)
            return replace(state, version=version, likes=event.shard_likes)
    return replace(state, version=version)
