"""The schedule decider: future times only, reminders, cancel, reminded ahead, due, started
(spec §2.7, §3.1)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from spaktok.commands import parts
from spaktok.commands.audience_decide import recipient_batches
from spaktok.commands.base import Command, Rejection
from spaktok.commands.schedules import (
    CancelSchedule,
    CreateSchedule,
    FireSchedule,
    MarkScheduleStarted,
    RemindSchedule,
    SetReminder,
)
from spaktok.commands.stream_state import millis
from spaktok.events.base import Event
from spaktok.events.envelope import derive_id
from spaktok.events.schedules import (
    ReminderSet,
    RemindersNotified,
    ScheduleCancelled,
    ScheduleDue,
    ScheduleReminded,
    ScheduleStarted,
    StreamScheduled,
)

NoticeKind = Literal["schedule_due", "schedule_cancelled", "schedule_reminder"]


@dataclass(frozen=True, slots=True)
class ScheduleState:
    version: int = 0
    status: Literal["none", "scheduled", "due", "started", "cancelled"] = "none"
    user_id: str = ""
    username: str = ""
    title: str = ""
    notify_followers: bool = False
    scheduled_for_ms: int = 0
    created_ms: int = 0
    reminded: bool = False  # the ahead-of-time reminder went out (once per schedule)
    reminders: dict[str, int] = field(default_factory=dict)  # user -> when set (ms)
    stream_id: str = ""

    def stats(self) -> dict[str, Any]:
        return {"status": self.status, "reminders": len(self.reminders), "streamId": self.stream_id or None}

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleState:
        return cls(**data)


def split(state: ScheduleState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reminder holders in the record up to one part's worth, beyond that in parts by user
    (`commands.parts`): a big creator's event can gather hundreds of thousands."""
    main = state.to_dict()
    return main, parts.inline_or_split(main, "reminders", state.reminders)


def join(main: dict[str, Any], contents: dict[str, Any]) -> ScheduleState:
    reminders = parts.inline_or_joined(main, contents, "reminders")
    return ScheduleState.from_dict({**main, "reminders": reminders})


def thaw(state: ScheduleState) -> ScheduleState:
    return replace(state, reminders=dict(state.reminders))


def decide(command: Command, state: ScheduleState) -> list[Event]:
    match command:
        case CreateSchedule():
            if state.status != "none":
                raise Rejection("schedule-exists", "a schedule with this id exists")
            if command.scheduled_for <= command.issued_at:
                raise Rejection("schedule-in-past", "a stream can only be scheduled in the future")
            fields = command.model_dump(
                exclude={"type", "command_id", "correlation_id", "issued_at", "actor_id"}
            )
            return [StreamScheduled(**fields, user_id=command.actor_id, created_at=command.issued_at)]
        case SetReminder():
            _require_upcoming(state)
            if command.actor_id in state.reminders:
                return []
            return [ReminderSet(user_id=command.actor_id, set_at=command.issued_at)]
        case CancelSchedule():
            _require_upcoming(state)
            if command.actor_id != state.user_id:
                raise Rejection("not-schedule-owner", "only the broadcaster can cancel this schedule")
            return [
                ScheduleCancelled(cancelled_at=command.issued_at),
                *_remind(command, state, "schedule_cancelled"),
            ]
        case FireSchedule():
            if state.status != "scheduled" or millis(command.issued_at) < state.scheduled_for_ms:
                return []  # not due yet, or no longer waiting
            return [ScheduleDue(due_at=command.issued_at), *_remind(command, state, "schedule_due")]
        case RemindSchedule():
            if not reminder_due(state, millis(command.issued_at), command.lead_s * 1000):
                return []  # not yet, too late, already sent, or no longer waiting
            return [
                ScheduleReminded(reminded_at=command.issued_at, lead_s=command.lead_s),
                *_remind(command, state, "schedule_reminder"),
            ]
        case MarkScheduleStarted():
            if state.status not in ("scheduled", "due") or command.broadcaster_id != state.user_id:
                return []  # someone else's schedule, or one already started or cancelled: no link
            return [ScheduleStarted(stream_id=command.stream_id, started_at=command.issued_at)]
    raise Rejection("unsupported-command", f"the schedule aggregate does not handle {command.type}")


def reminder_due(state: ScheduleState, now_ms: int, lead_ms: int) -> bool:
    """Whether the ahead-of-time reminder is to go out now: the schedule still waits, the reminder
    has not gone out, and `now` is in [scheduled_for - lead, scheduled_for). A schedule created
    inside its own lead gets none (its announcement just went out; the due notice follows), and once
    the time has come the due notice speaks instead. The worker's timer picks by this too."""
    remind_at = state.scheduled_for_ms - lead_ms
    return (
        state.status == "scheduled"
        and not state.reminded
        and lead_ms > 0
        and state.created_ms <= remind_at <= now_ms < state.scheduled_for_ms
    )


def _require_upcoming(state: ScheduleState) -> None:
    if state.status == "none":
        raise Rejection("schedule-not-found", "no schedule with this id")
    if state.status not in ("scheduled", "due"):
        raise Rejection("schedule-closed", f"the schedule is {state.status}")


def notification_id(schedule_id: str, kind: str) -> str:
    """One id per schedule and occasion: reminder holders who also follow get it once."""
    return derive_id("schedule", schedule_id, kind)


def _remind(command: Command, state: ScheduleState, kind: NoticeKind) -> list[Event]:
    return [
        RemindersNotified(
            notification_id=notification_id(command.aggregate_id, kind),
            kind=kind,
            channel_id=state.user_id,
            schedule_id=command.aggregate_id,
            title=state.title,
            actor_name=state.username,
            recipients=batch,
            sent_at=command.issued_at,
        )
        for batch in recipient_batches(state.reminders)
    ]


def evolve(state: ScheduleState, event: Event) -> ScheduleState:
    version = state.version + 1
    match event:
        case StreamScheduled():
            return replace(
                state,
                version=version,
                status="scheduled",
                user_id=event.user_id,
                username=event.username,
                title=event.title,
                notify_followers=event.notify_followers,
                scheduled_for_ms=millis(event.scheduled_for),
                created_ms=millis(event.created_at),
            )
        case ReminderSet():
            state.reminders[event.user_id] = millis(event.set_at)
            return replace(state, version=version)
        case ScheduleCancelled():
            return replace(state, version=version, status="cancelled")
        case ScheduleReminded():
            return replace(state, version=version, reminded=True)
        case ScheduleDue():
            return replace(state, version=version, status="due")
        case ScheduleStarted():
            return replace(state, version=version, status="started", stream_id=event.stream_id)
    return replace(state, version=version)
