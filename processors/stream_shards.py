"""Wiring of a hot stream's shards (commands/stream_shards.py) into the worker.

Two directions: the stream tells its shards what they need (`tell_shards`: opened, ended, a ban of
one of their users, their viewers' joins and leaves: one command per shard per batch), and each
shard tells the stream (`_to_stream`) its running like total when the worker's fold timer asks (at
most once per `shard_fold_interval_s`; the folds of one batch for one stream merged into one
command) and the visits its sweep timed out (one command per time-out event, never merged: see
`TIMEOUTS_PER_EVENT`).
"""

from __future__ import annotations

from typing import Any

from spaktok.commands import stream_shard_decide
from spaktok.commands.base import Command, Rejection
from spaktok.commands.stream.state import millis
from spaktok.commands.stream_shard_decide import StreamShardState
from spaktok.commands.stream_shards import (
    ChangeShardViewers,
    CloseShard,
    OpenShard,
    RecordShardHeartbeats,
    RecordShardLikes,
    SetShardBan,
    StreamShardCommand,
    shard_of,
)
from spaktok.commands.streams import FoldShardLikes, TimeOutViewers
from spaktok.events.envelope import derive_id
from spaktok.events.stream_shards import StreamShardCommandRejected
from spaktok.events.streams import ViewerJoined, ViewerLeft
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, follow_up
from spaktok.processors.core import Sealed

SHARDS_TOPIC = topics.COMMANDS_STREAM_SHARDS.name


def tell_shards(command: Command, envelopes: list[Sealed], like_shards: int) -> list[Forward]:
    """What the stream's shards must hear from this command's events: it started (each shard opens),
    it ended (each closes), a user was banned or unbanned (that user's shard), viewers joined or
    left (their shards, one command per shard)."""
    if like_shards <= 0:
        return []
    stream_id = command.aggregate_id
    forwards: list[Forward] = []
    for env in envelopes:
        if env.type == "streams.StreamStarted":
            owner = env.payload["user_id"]
            forwards += [
                _to_shard(command, f"open-shard:{n}", OpenShard, stream_id, n, owner_id=owner)
                for n in range(like_shards)
            ]
        elif env.type == "streams.StreamEnded":
            forwards += [
                _to_shard(command, f"close-shard:{n}", CloseShard, stream_id, n) for n in range(like_shards)
            ]
        elif env.type in ("streams.UserBanned", "streams.UserUnbanned"):
            user_id = env.payload["user_id"]
            ban = {"user_id": user_id, "banned": env.type == "streams.UserBanned"}
            n = shard_of(user_id, like_shards)
            forwards.append(_to_shard(command, f"shard-ban:{env.event_id}", SetShardBan, stream_id, n, **ban))
    return forwards + _viewer_changes(command, envelopes, like_shards)


def _viewer_changes(command: Command, envelopes: list[Sealed], like_shards: int) -> list[Forward]:
    """Joins and leaves, in order, one `ChangeShardViewers` per shard. Viewers timed out were timed
    out by their shard, and the end closes every shard, so those leaves are not sent."""
    changes: dict[int, list[tuple[str, int | None]]] = {}
    for env in envelopes:
        event = env.event
        if isinstance(event, ViewerJoined):
            changes.setdefault(shard_of(event.user_id, like_shards), []).append(
                (event.user_id, millis(event.joined_at))
            )
        elif isinstance(event, ViewerLeft) and event.reason in ("left", "banned"):
            changes.setdefault(shard_of(event.user_id, like_shards), []).append((event.user_id, None))
    stream_id = command.aggregate_id
    return [
        _to_shard(command, f"shard-viewers:{n}", ChangeShardViewers, stream_id, n, changes=listed)
        for n, listed in changes.items()
    ]


def _to_shard(
    command: Command, purpose: str, kind: type[StreamShardCommand], stream_id: str, shard: int, **fields: Any
) -> Forward:
    actor = fields.get("owner_id", command.actor_id)
    return Forward(
        SHARDS_TOPIC,
        kind(**follow_up(command, purpose), actor_id=actor, stream_id=stream_id, shard=shard, **fields),
    )


def _to_stream(command: Command, envelopes: list[Sealed], state: StreamShardState) -> list[Forward]:
    """The shard's running like total when its fold timer handed it over; the visits its sweep timed
    out, one command per event (`TIMEOUTS_PER_EVENT` visits at most)."""
    forwards: list[Forward] = []
    handed = [env for env in envelopes if env.type == "stream_shards.ShardLikesHandedOver"]
    if handed:
        fold = FoldShardLikes(
            **follow_up(command, "fold-shard-likes"),
            actor_id="edge",
            stream_id=state.stream_id,
            totals={str(state.shard): handed[-1].payload["shard_likes"]},
        )
        forwards.append(Forward(topics.COMMANDS_STREAMS.name, fold))
    for env in envelopes:
        if env.type == "stream_shards.ShardViewersTimedOut":
            timeout = TimeOutViewers(
                **follow_up(command, f"time-out-viewers:{env.event_id}"),
                actor_id="system",
                stream_id=state.stream_id,
                visits=env.payload["visits"],
            )
            forwards.append(Forward(topics.COMMANDS_STREAMS.name, timeout))
    return forwards


def _merge_folds(commands: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch's folds for one stream, from several of its shards, as one command: the highest total
    of each shard. The merged id is derived from theirs, so the batch decided again merges to the
    same command. (Time-outs are not merged: each carries up to `TIMEOUTS_PER_EVENT` visits, and a
    merge of many would outgrow a record.)"""
    totals: dict[str, int] = {}
    for fold in commands:
        for shard, total in fold["totals"].items():
            totals[shard] = max(total, totals.get(shard, 0))
    ids = (c["command_id"] for c in commands)
    return {**commands[0], "command_id": derive_id("fold-shard-likes", *ids), "totals": totals}


def _rejected(command: Command, rejection: Rejection) -> StreamShardCommandRejected:
    return StreamShardCommandRejected(
        command_type=command.type,
        reason=rejection.reason,
        detail=rejection.detail,
        rejected_action_ids=[a for a, _, _ in getattr(command, "likes", ())],
    )


def _is_final(command: Command, envelopes: list[Sealed]) -> bool:
    # the like's and the heartbeat's callers wait; the stream's forwards and the timer's sweeps not
    return isinstance(command, RecordShardLikes | RecordShardHeartbeats)


STREAM_SHARDS = AggregateSpec(
    aggregate_type="stream_shard",
    events_topic=topics.EVENTS_STREAM_SHARDS.name,
    initial=StreamShardState,
    load=StreamShardState.from_dict,
    decide=stream_shard_decide.decide,
    evolve=stream_shard_decide.evolve,
    rejected=_rejected,
    follow_ups=_to_stream,
    is_final=_is_final,
    thaw=stream_shard_decide.thaw,
    is_active=stream_shard_decide.is_active,
    split=stream_shard_decide.split,
    join=stream_shard_decide.join,
    merge_types=frozenset({"streams.FoldShardLikes"}),
    merge=_merge_folds,
)
