"""Wiring of a hot stream's like shards (commands/stream_shards.py) into the worker.

Two directions: the stream tells its shards what they need (`tell_shards`: opened, ended, a ban of
one of their users), and each shard tells the stream its running like total after every batch that
counted likes (`_fold`); the folds of one batch for one stream travel as one command.
"""

from __future__ import annotations

from typing import Any

from spaktok.commands import stream_shard_decide
from spaktok.commands.base import Command, Rejection
from spaktok.commands.stream_shard_decide import StreamShardState
from spaktok.commands.stream_shards import CloseShard, OpenShard, RecordShardLikes, SetShardBan, shard_of
from spaktok.commands.streams import FoldShardLikes
from spaktok.events.envelope import derive_id
from spaktok.events.stream_shards import StreamShardCommandRejected
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, follow_up
from spaktok.processors.core import Sealed

SHARDS_TOPIC = topics.COMMANDS_STREAM_SHARDS.name


def tell_shards(command: Command, envelopes: list[Sealed], like_shards: int) -> list[Forward]:
    """What the stream's shards must hear from this command's events: it started (each shard opens),
    it ended (each closes), a user was banned or unbanned (that user's shard)."""
    if like_shards <= 0:
        return []
    forwards: list[Forward] = []
    for env in envelopes:
        stream_id = env.aggregate_id
        if env.type == "streams.StreamStarted":
            owner = env.payload["user_id"]
            forwards += [
                Forward(
                    SHARDS_TOPIC,
                    OpenShard(
                        **follow_up(command, f"open-shard:{n}"),
                        actor_id=owner,
                        stream_id=stream_id,
                        shard=n,
                        owner_id=owner,
                    ),
                )
                for n in range(like_shards)
            ]
        elif env.type == "streams.StreamEnded":
            forwards += [
                Forward(
                    SHARDS_TOPIC,
                    CloseShard(
                        **follow_up(command, f"close-shard:{n}"),
                        actor_id=command.actor_id,
                        stream_id=stream_id,
                        shard=n,
                    ),
                )
                for n in range(like_shards)
            ]
        elif env.type in ("streams.UserBanned", "streams.UserUnbanned"):
            user_id = env.payload["user_id"]
            ban = SetShardBan(
                **follow_up(command, f"shard-ban:{env.event_id}"),
                actor_id=command.actor_id,
                stream_id=stream_id,
                shard=shard_of(user_id, like_shards),
                user_id=user_id,
                banned=env.type == "streams.UserBanned",
            )
            forwards.append(Forward(SHARDS_TOPIC, ban))
    return forwards


def _fold(command: Command, envelopes: list[Sealed], state: StreamShardState) -> list[Forward]:
    counted = [env for env in envelopes if env.type == "stream_shards.ShardLikesRecorded"]
    if not counted:
        return []
    fold = FoldShardLikes(
        **follow_up(command, "fold-shard-likes"),
        actor_id="edge",
        stream_id=state.stream_id,
        totals={str(state.shard): counted[-1].payload["shard_likes"]},
    )
    return [Forward(topics.COMMANDS_STREAMS.name, fold)]


def _merge_folds(commands: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch's folds for one stream (from several of its shards) as one: the highest total of each
    shard. Its id is derived from theirs, so the batch decided again merges to the same command."""
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
    return isinstance(command, RecordShardLikes)  # the like's caller waits; the stream's forwards not


STREAM_SHARDS = AggregateSpec(
    aggregate_type="stream_shard",
    events_topic=topics.EVENTS_STREAM_SHARDS.name,
    initial=StreamShardState,
    load=StreamShardState.from_dict,
    decide=stream_shard_decide.decide,
    evolve=stream_shard_decide.evolve,
    rejected=_rejected,
    follow_ups=_fold,
    is_final=_is_final,
    thaw=stream_shard_decide.thaw,
    merge_types=frozenset({"streams.FoldShardLikes"}),
    merge=_merge_folds,
)
