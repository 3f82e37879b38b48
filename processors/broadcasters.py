"""Wiring of the broadcaster aggregate: a claimed slot forwards `OpenStream` to the stream (with the
channel's moderators), and a change of the channel's moderators while live forwards the new set."""

from __future__ import annotations

from spaktok.commands import broadcaster_decide
from spaktok.commands.audiences import AddFollower, RemoveFollower, shard_of
from spaktok.commands.base import Command
from spaktok.commands.broadcaster_decide import BroadcasterState
from spaktok.commands.broadcasters import StartStream
from spaktok.commands.streams import OpenStream, SyncChannelModerators
from spaktok.events.broadcasters import BroadcasterCommandRejected
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, follow_up, forward_id, refused_as
from spaktok.processors.core import Sealed
from spaktok.processors.enforcement import end_live_stream

PERMISSION = frozenset({"broadcaster_age", "streaming_min_age"})  # the channel's to decide, not the stream's


def _follow_ups(command: Command, envelopes: list[Sealed], state: BroadcasterState) -> list[Forward]:
    if isinstance(command, StartStream) and any(e.type == "broadcasters.BroadcastClaimed" for e in envelopes):
        fields = command.model_dump(exclude={"type", "command_id", "correlation_id", "user_id", *PERMISSION})
        open_stream = OpenStream(
            **fields,
            command_id=forward_id(command, "open-stream"),
            correlation_id=command.correlation,
            channel_moderators=sorted(state.channel_moderators),
        )
        return [Forward(topics.COMMANDS_STREAMS.name, open_stream)]
    forwards = end_live_stream(command, envelopes) + _sync_moderators(command, envelopes, state)
    for env in envelopes:
        if env.type in ("broadcasters.UserFollowed", "broadcasters.UserUnfollowed"):
            channel, follower = env.payload["followee_id"], command.aggregate_id
            make = AddFollower if env.type == "broadcasters.UserFollowed" else RemoveFollower
            change = make(
                **follow_up(command, f"audience:{channel}"),
                actor_id=follower,
                channel_id=channel,
                shard=shard_of(follower),
                follower_id=follower,
            )
            forwards.append(Forward(topics.COMMANDS_AUDIENCES.name, change))
    return forwards


MODERATOR_EVENTS = ("broadcasters.ChannelModeratorAdded", "broadcasters.ChannelModeratorRemoved")


def _sync_moderators(command: Command, envelopes: list[Sealed], state: BroadcasterState) -> list[Forward]:
    """While live, the stream learns the channel's new moderators (the whole set: the forwards of
    one broadcaster reach its stream in order, so the last one wins)."""
    if state.active_stream_id is None or not any(e.type in MODERATOR_EVENTS for e in envelopes):
        return []
    sync = SyncChannelModerators(
        **follow_up(command, "sync-channel-moderators"),
        actor_id=command.aggregate_id,
        stream_id=state.active_stream_id,
        moderators=sorted(state.channel_moderators),
    )
    return [Forward(topics.COMMANDS_STREAMS.name, sync)]


def _is_final(command: Command, envelopes: list[Sealed]) -> bool:
    # an accepted StartStream is answered by the stream's StreamStarted, not here
    return not isinstance(command, StartStream)


BROADCASTERS = AggregateSpec(
    aggregate_type="broadcaster",
    events_topic=topics.EVENTS_BROADCASTERS.name,
    initial=BroadcasterState,
    load=BroadcasterState.from_dict,
    decide=broadcaster_decide.decide,
    evolve=broadcaster_decide.evolve,
    rejected=refused_as(BroadcasterCommandRejected),
    follow_ups=_follow_ups,
    is_final=_is_final,
)
