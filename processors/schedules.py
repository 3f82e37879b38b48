"""Wiring of the schedule aggregate: reminders, and followers told of it when announced, ahead of
its time and when the time comes."""

from __future__ import annotations

from spaktok.commands import schedule_decide
from spaktok.commands.audiences import AUDIENCE_SHARDS, NotifyFollowers
from spaktok.commands.base import Command
from spaktok.commands.schedule_decide import ScheduleState, notification_id
from spaktok.commands.schedules import FireSchedule, MarkScheduleStarted, RemindSchedule
from spaktok.events.audiences import NoticeKind
from spaktok.events.base import Event
from spaktok.events.schedules import (
    ScheduleCommandRejected,
    ScheduleDue,
    ScheduleReminded,
    StreamScheduled,
)
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, follow_up, refused_as
from spaktok.processors.core import Sealed

# the schedule's events that followers hear of (when the broadcaster asked), and the notice kind
FOLLOWER_NOTICES: dict[type[Event], NoticeKind] = {
    StreamScheduled: "schedule_announced",
    ScheduleReminded: "schedule_reminder",
    ScheduleDue: "schedule_due",
}


def _follow_ups(command: Command, envelopes: list[Sealed], state: ScheduleState) -> list[Forward]:
    """Announced, reminded ahead, due: the channel's followers hear of each (if the broadcaster
    asked), through the same audience-shard fan-out as a stream going live."""
    if not state.notify_followers:
        return []
    kinds = [FOLLOWER_NOTICES[type(e.event)] for e in envelopes if type(e.event) in FOLLOWER_NOTICES]
    return [
        Forward(
            topics.COMMANDS_AUDIENCES.name,
            NotifyFollowers(
                **follow_up(
                    command, f"notify-followers:{shard}" + ("" if kind == "schedule_due" else f":{kind}")
                ),
                actor_id=state.user_id,
                channel_id=state.user_id,
                shard=shard,
                notification_id=notification_id(command.aggregate_id, kind),
                kind=kind,
                schedule_id=command.aggregate_id,
                title=state.title,
                actor_name=state.username,
            ),
        )
        for kind in kinds
        for shard in range(AUDIENCE_SHARDS)
    ]


def _is_final(command: Command, envelopes: list[Sealed]) -> bool:
    return not isinstance(
        command, FireSchedule | RemindSchedule | MarkScheduleStarted
    )  # processors' own commands


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
