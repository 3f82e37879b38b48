"""Wiring of the stream aggregate into the worker: follow-ups and which decisions are final."""

from __future__ import annotations

from typing import Any

from spaktok.commands import stream_decide
from spaktok.commands.base import Command, Rejection
from spaktok.commands.broadcasters import ReleaseBroadcast
from spaktok.commands.stream_state import StreamState, evolve, thaw
from spaktok.commands.streams import SweepViewers
from spaktok.events.envelope import Envelope
from spaktok.events.streams import StreamCommandRejected
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, forward_id


def _rejected(command: Command, rejection: Rejection) -> StreamCommandRejected:
    action_ids = [a for a, _, _ in getattr(command, "likes", ())]
    return StreamCommandRejected(
        command_type=command.type,
        reason=rejection.reason,
        detail=rejection.detail,
        rejected_action_ids=action_ids,
    )


def _follow_ups(command: Command, envelopes: list[Envelope], state: StreamState) -> list[Forward]:
    if any(env.type == "streams.StreamEnded" for env in envelopes):
        release = ReleaseBroadcast(
            command_id=forward_id(command, "release-broadcast"),
            correlation_id=command.correlation,
            issued_at=command.issued_at,
            actor_id=command.actor_id,
            user_id=state.user_id,
            stream_id=state.stream_id,
        )
        return [Forward(topics.COMMANDS_BROADCASTERS.name, release)]
    return []


def _is_final(command: Command, envelopes: list[Envelope]) -> bool:
    # nobody waits for the answer to the worker's own sweeps
    return not isinstance(command, SweepViewers)


def _load(data: dict[str, Any]) -> StreamState:
    return StreamState.from_dict(data)


STREAMS = AggregateSpec(
    aggregate_type="stream",
    events_topic=topics.EVENTS_STREAMS.name,
    initial=StreamState,
    load=_load,
    decide=stream_decide.decide,
    evolve=evolve,
    rejected=_rejected,
    follow_ups=_follow_ups,
    is_final=_is_final,
    thaw=thaw,
    is_active=lambda state: state.status == "live",
)
