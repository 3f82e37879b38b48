"""The stream-shard decider: one shard of a hot stream counts its viewers' likes and keeps their
presence (commands/stream_shards.py).

Likes: it applies the rules the stream applies (`commands/stream/chat.py`), on what the stream told
it: the stream is live, the user is not banned, the client's action was not counted already. A
shard's like-id memory is its own: a user's likes always reach the same shard, so their retries do.

Presence: the stream tells the shard who joined and left; the shard takes its viewers' heartbeats
(refusing users who are not watching, as the stream does) and its sweep times out the silent ones,
whose visits the worker forwards to the stream (processors/stream_shards.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from spaktok.commands.base import Command, Rejection
from spaktok.commands.parted_map import PartedMap
from spaktok.commands.stream.audience import last_seen_before
from spaktok.commands.stream.chat import count_likes, remember_like_ids
from spaktok.commands.stream.state import millis
from spaktok.commands.stream_shards import (
    ChangeShardViewers,
    CloseShard,
    FoldShard,
    OpenShard,
    RecordShardHeartbeats,
    RecordShardLikes,
    SetShardBan,
    SweepShardViewers,
)
from spaktok.events.base import Event
from spaktok.events.stream_shards import (
    ShardBanSet,
    ShardClosed,
    ShardHeartbeatsRecorded,
    ShardLikesHandedOver,
    ShardLikesRecorded,
    ShardOpened,
    ShardViewersChanged,
    ShardViewersTimedOut,
)


@dataclass(frozen=True, slots=True)
class StreamShardState:
    version: int = 0
    stream_id: str = ""
    shard: int = 0
    status: Literal["none", "live", "ended"] = "none"
    owner_id: str = ""
    likes: int = 0
    folded: int = 0  # the running total last handed to the stream
    banned: dict[str, None] = field(default_factory=dict)  # a set, JSON-able
    recent_like_ids: dict[str, None] = field(default_factory=dict)  # insertion-ordered: oldest first
    # the shard's viewers: user -> [joined epoch ms, last seen epoch ms], stored in parts by user
    viewers: PartedMap = field(default_factory=PartedMap)

    def stats(self) -> dict[str, Any]:
        """What a like's answer says: the stream's total is the stream's (folded from every shard)."""
        return {"status": self.status, "shard": self.shard, "shardLikes": self.likes}

    def to_dict(self) -> dict[str, Any]:
        """The stored record without the viewers (`split` stores them in parts)."""
        return {
            "version": self.version,
            "stream_id": self.stream_id,
            "shard": self.shard,
            "status": self.status,
            "owner_id": self.owner_id,
            "likes": self.likes,
            "folded": self.folded,
            "banned": list(self.banned),
            "recent_like_ids": list(self.recent_like_ids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamShardState:
        data = dict(data)
        data["banned"] = dict.fromkeys(data.get("banned", ()))
        data["recent_like_ids"] = dict.fromkeys(data.get("recent_like_ids", ()))
        return cls(**data)


def split(state: StreamShardState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The viewers in parts by user (`commands.parts`): a shard of a 1 M-viewer stream holds
    ~1 M / K of them, and a batch of heartbeats rewrites only the parts it touched."""
    return state.to_dict(), {"viewers": state.viewers.parts("viewers")}


def join(main: dict[str, Any], contents: dict[str, Any]) -> StreamShardState:
    return replace(StreamShardState.from_dict(main), viewers=PartedMap.from_parts(contents, "viewers"))


def thaw(state: StreamShardState) -> StreamShardState:
    return replace(
        state,
        banned=dict(state.banned),
        recent_like_ids=dict(state.recent_like_ids),
        viewers=state.viewers.thawed(),
    )


def fold_due(state: StreamShardState) -> bool:
    """Whether the worker's fold timer asks this shard: it counted likes the stream has not had."""
    return state.likes > state.folded


def is_active(state: StreamShardState) -> bool:
    """Whether the worker's sweep looks at this shard: live, with viewers."""
    return state.status == "live" and len(state.viewers) > 0


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
        case ChangeShardViewers():
            return _viewers_changed(command, state)
        case RecordShardHeartbeats():
            return _heartbeats(command, state)
        case SweepShardViewers():
            return _sweep(command, state)
        case FoldShard():  # after the end too: what was counted while live still reaches the stream
            if state.likes <= state.folded:
                return []  # a second tick before the first was decided
            return [
                ShardLikesHandedOver(
                    stream_id=command.stream_id, shard=command.shard, shard_likes=state.likes
                )
            ]
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


def _viewers_changed(command: ChangeShardViewers, state: StreamShardState) -> list[Event]:
    """Each user's last change wins; what the shard already holds is left out (a replayed forward).
    A closed shard takes none: the end let everyone leave."""
    if state.status != "live":
        return []
    final: dict[str, int | None] = {}
    for user_id, joined_ms in command.changes:
        final[user_id] = joined_ms
    joined = {
        user_id: datetime.fromtimestamp(joined_ms / 1000, UTC)
        for user_id, joined_ms in final.items()
        if joined_ms is not None and (user_id not in state.viewers or state.viewers[user_id][0] != joined_ms)
    }
    left = [user_id for user_id, joined_ms in final.items() if joined_ms is None and user_id in state.viewers]
    if not joined and not left:
        return []
    return [ShardViewersChanged(stream_id=command.stream_id, shard=command.shard, joined=joined, left=left)]


def _heartbeats(command: RecordShardHeartbeats, state: StreamShardState) -> list[Event]:
    """The stream's rule for heartbeats (`commands/stream/audience.py`): only viewers' count."""
    if state.status != "live":
        raise Rejection("stream-not-live", "the stream is not live")
    latest: dict[str, int] = {}
    for user_id, at_ms in command.beats:
        if user_id in state.viewers:
            latest[user_id] = max(at_ms, latest.get(user_id, at_ms))
    if not latest:
        raise Rejection("not-watching", "none of these users is watching this stream")
    beats = {user_id: datetime.fromtimestamp(at_ms / 1000, UTC) for user_id, at_ms in latest.items()}
    return [
        ShardHeartbeatsRecorded(
            stream_id=command.stream_id, shard=command.shard, beats=beats, count=len(command.beats)
        )
    ]


TIMEOUTS_PER_EVENT = 1_000  # visits per ShardViewersTimedOut (~60 KB), far below a record's limit


def _sweep(command: SweepShardViewers, state: StreamShardState) -> list[Event]:
    """Viewers not heard from (joined or beat) for longer than `silent_ms` time out, with their visit,
    `TIMEOUTS_PER_EVENT` to an event: a shard of a 1 M-viewer stream whose broadcast dropped for
    everyone times out ~125,000 at once, which as one event (and one forward) would be 7 MB, over
    what a Kafka record may hold (found by bench/hot_stream.py)."""
    if state.status != "live":
        return []
    silent_before = millis(command.issued_at) - command.silent_ms
    silent = [
        (user_id, (seen[0], seen[1])) for user_id, seen in last_seen_before(state.viewers, silent_before)
    ]
    return [
        ShardViewersTimedOut(
            stream_id=command.stream_id,
            shard=command.shard,
            visits=dict(silent[start : start + TIMEOUTS_PER_EVENT]),
            swept_at=command.issued_at,
        )
        for start in range(0, len(silent), TIMEOUTS_PER_EVENT)
    ]


def _evolve_viewers(state: StreamShardState, event: Event) -> None:
    """The presence events' changes to a thawed state's viewers (in place)."""
    viewers = state.viewers
    match event:
        case ShardViewersChanged():
            for user_id, joined_at in event.joined.items():
                at = millis(joined_at)
                viewers[user_id] = [at, at]
            for user_id in event.left:
                viewers.pop(user_id, None)
        case ShardHeartbeatsRecorded():
            for user_id, beat_at in event.beats.items():
                seen = viewers.get(user_id)
                if seen is not None:
                    viewers[user_id] = [seen[0], max(seen[1], millis(beat_at))]
        case ShardViewersTimedOut():
            for user_id, (joined_ms, _) in event.visits.items():
                seen = viewers.get(user_id)
                if seen is not None and seen[0] == joined_ms:
                    viewers.pop(user_id)


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
        case ShardClosed():  # the stream's end let every viewer leave
            return replace(state, version=version, status="ended", recent_like_ids={}, viewers=PartedMap())
        case ShardBanSet():
            if event.banned:
                state.banned[event.user_id] = None
            else:
                state.banned.pop(event.user_id, None)
            return replace(state, version=version)
        case ShardLikesRecorded():
            remember_like_ids(state.recent_like_ids, event.action_ids)
            return replace(state, version=version, likes=event.shard_likes)
        case ShardLikesHandedOver():
            return replace(state, version=version, folded=event.shard_likes)
        case ShardViewersChanged() | ShardHeartbeatsRecorded() | ShardViewersTimedOut():
            _evolve_viewers(state, event)
    return replace(state, version=version)
