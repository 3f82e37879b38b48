"""Wiring of the audience-shard aggregate: follower sets and the notifications they fan out to."""

from __future__ import annotations

from spaktok.commands import audience_decide
from spaktok.commands.audience_decide import AudienceState
from spaktok.commands.base import Command
from spaktok.events.audiences import AudienceCommandRejected
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, refused_as
from spaktok.processors.core import Sealed


def _no_follow_ups(command: Command, envelopes: list[Sealed], state: AudienceState) -> list[Forward]:
    return []


def _never_final(command: Command, envelopes: list[Sealed]) -> bool:
    return False  # only processors send these commands; nobody waits for an answer


AUDIENCES = AggregateSpec(
    aggregate_type="audience",
    events_topic=topics.EVENTS_AUDIENCES.name,
    initial=AudienceState,
    load=AudienceState.from_dict,
    decide=audience_decide.decide,
    evolve=audience_decide.evolve,
    rejected=refused_as(AudienceCommandRejected),
    follow_ups=_no_follow_ups,
    is_final=_never_final,
    thaw=audience_decide.thaw,
    split=audience_decide.split,
    join=audience_decide.join,
    is_notice=lambda event: event.notice,
    notice_topic=topics.NOTIFICATIONS.name,
)
