"""Commands on the shards of a hot stream (`{stream}:{shard}`): likes and presence, spread over partitions.

A stream is one aggregate on one partition, decided by one worker core. For a stream opened with
`like_shards` K > 0 (named when shards only counted likes), the API sends each viewer's likes and
heartbeats to shard `shard_of(user, K)` instead:
- likes are commutative, so K shards count them in parallel, and each forwards its running total to
  the stream every `shard_fold_interval_s` while it has counted more (`FoldShard`, from the
  worker's timer), which the stream folds into its like count;
- heartbeats only move a viewer's last sign of life, so the shard keeps it; the shard's own sweep
  finds its silent viewers and forwards their visits to the stream, which lets them leave
  (`ViewerLeft(timed_out)`, watch time to their last sign of life), as its own sweep does unsharded.
What needs one writer (lifecycle, joins and leaves with the viewer count, moderation, gifts' order)
stays with the stream, which tells the shards what they need: that it is live, that it ended, who is
banned, who joined and left (docs/decisions.md "Hot-stream shards").
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Literal, TypedDict

from pydantic import Field

from spaktok.commands.base import Command, register_command

MAX_LIKE_SHARDS = 64


def shard_of(user_id: str, shards: int) -> int:
    """A user's shard of a stream: fixed by a hash of their id, so their retries meet their likes."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=4, person=b"likeshrd").digest()
    return int.from_bytes(digest, "big") % shards


def stream_shard_id(stream_id: str, shard: int) -> str:
    return f"{stream_id}:{shard}"


class ShardAddress(TypedDict):
    stream_id: str
    shard: int


def shard_address(shard_id: str) -> ShardAddress:
    """`stream_id` and `shard` of a shard's aggregate id (`stream_shard_id` read back)."""
    stream_id, _, shard = shard_id.rpartition(":")
    return {"stream_id": stream_id, "shard": int(shard)}


class StreamShardCommand(Command):
    aggregate_type: ClassVar[str] = "stream_shard"
    stream_id: str = Field(min_length=1, max_length=64)
    shard: int = Field(ge=0, lt=MAX_LIKE_SHARDS)

    @property
    def aggregate_id(self) -> str:
        return stream_shard_id(self.stream_id, self.shard)


@register_command
class RecordShardLikes(StreamShardCommand):
    """Edge batch: likes of the viewers of one shard (actor = 'edge'), as `RecordLikes` holds them."""

    type: Literal["stream_shards.RecordShardLikes"] = "stream_shards.RecordShardLikes"
    likes: list[tuple[str, str, int]] = Field(min_length=1)  # (action id, user id, taps)


@register_command
class OpenShard(StreamShardCommand):
    """Internal, from the stream when it starts: the shard takes likes from now on."""

    type: Literal["stream_shards.OpenShard"] = "stream_shards.OpenShard"
    owner_id: str


@register_command
class CloseShard(StreamShardCommand):
    """Internal, from the stream when it ends: later likes are refused (`stream-not-live`)."""

    type: Literal["stream_shards.CloseShard"] = "stream_shards.CloseShard"


@register_command
class SetShardBan(StreamShardCommand):
    """Internal, from the stream: a user of this shard was banned (or the ban lifted)."""

    type: Literal["stream_shards.SetShardBan"] = "stream_shards.SetShardBan"
    user_id: str
    banned: bool


@register_command
class ChangeShardViewers(StreamShardCommand):
    """Internal, from the stream: viewers of this shard who joined (`[user, joined epoch ms]`) or left
    (`[user, null]`), in the order the stream decided them (a batch's changes travel as one command)."""

    type: Literal["stream_shards.ChangeShardViewers"] = "stream_shards.ChangeShardViewers"
    changes: list[tuple[str, int | None]] = Field(min_length=1)


@register_command
class RecordShardHeartbeats(StreamShardCommand):
    """Edge batch: heartbeats of the viewers of one shard (actor = 'edge'), as `RecordHeartbeats`."""

    type: Literal["stream_shards.RecordShardHeartbeats"] = "stream_shards.RecordShardHeartbeats"
    beats: list[tuple[str, int]] = Field(min_length=1)  # (user id, epoch millis)


@register_command
class SweepShardViewers(StreamShardCommand):
    """Internal, from the worker's timer: the shard's viewers silent for longer than `silent_ms` time
    out. The decision uses the command's `issued_at` as "now", so it is the same on every replay."""

    type: Literal["stream_shards.SweepShardViewers"] = "stream_shards.SweepShardViewers"
    silent_ms: int = Field(ge=1000)


@register_command
class FoldShard(StreamShardCommand):
    """Internal, from the worker's timer: hand the stream the likes counted since the last fold.
    At most one fold per shard per `shard_fold_interval_s`, however many like batches came."""

    type: Literal["stream_shards.FoldShard"] = "stream_shards.FoldShard"
