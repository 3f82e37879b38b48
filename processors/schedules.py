"""Wiring of the schedule aggregate: reminders, and followers told when the time comes."""

from __future__ import annotations

from spaktok.commands import schedule_decide
from spaktok.commands.audiences import AUDIENCE_SHARDS, NotifyFollowers
from spaktok.commands.base import Command
from spaktok.commands.schedule_decide import ScheduleState, notification_id
from spaktok.commands.schedules import FireSchedule, MarkScheduleStarted
from spaktok.events.schedules import ScheduleCommandRejected
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, follow_up, refused_as
from spaktok.processors.core import Sealed


def _follow_ups(command: Command, envelopes: list[Sealed], state: ScheduleState) -> list[Forward]:
    """When the time comes, the channel's followers hear of it too (if the broadcaster asked)."""
    if not state.notify_followers or not any(e.type == "schedules.ScheduleDue" for e in envelopes):
        return []
    return [
        Forward(
            topics.COMMANDS_AUDIENCES.name,
            NotifyFollowers(
                **follow_up(command, f"notify-followers:{shard}"),
                actor_id=state.user_id,
                channel_id=state.user_id,
                shard=shard,
                notification_id=notification_id(command.aggregate_id, "schedule_due"),
                kind="schedule_due",
                schedule_id=command.aggregate_id,
                title=state.title,
                actor_name=state.username,
            ),
        )
        for shard in range(AUDIENCE_SHARDS)
    ]


def _is_final(command: Command, envelopes: list[Sealed]) -> bool:
    return not isinstance(command, FireSchedule | MarkScheduleStarted)  # processors' own commands


SCHEDULES = AggregateSpec(
    aggregate_type="schedule",
    events_topic=topics.EVENTS_SCHEDULES.name,
    initial=ScheduleState,
    load=ScheduleState.from_dict,
    decide=schedule_decide.decide,
    evolve=schedule_decide.evolve,
    rejected=refused_as(ScheduleCommandRejected),
    follow_ups=_follow_ups,
    is_final=_is_final,
    thaw=schedule_decide.thaw,
    split=schedule_decide.split,
    join=schedule_decide.join,
    is_active=lambda state: state.status == "scheduled",
    is_notice=lambda event: event.notice,
    notice_topic=topics.NOTIFICATIONS.name,
)
