"""The schedule decider in given/when/then form: future only, reminders, cancel, due, started."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gwt import Aggregate, at

from spaktok.commands.schedule_decide import ScheduleState, decide, evolve, notification_id, thaw
from spaktok.commands.schedules import (
    CancelSchedule,
    CreateSchedule,
    FireSchedule,
    MarkScheduleStarted,
    SetReminder,
)
from spaktok.events.schedules import (
    ReminderSet,
    RemindersNotified,
    ScheduleCancelled,
    ScheduleDue,
    ScheduleStarted,
    StreamScheduled,
)

SCHEDULE = Aggregate(ScheduleState, decide, evolve, thaw)
HOST = "host"


def base(kind: str, actor: str, seconds: float) -> dict[str, Any]:
    return dict(
        command_id=f"{kind}-{actor}-{seconds}", issued_at=at(seconds), actor_id=actor, schedule_id="sc-1"
    )


def create(seconds: float, starts_in: float = 3600) -> CreateSchedule:
    return CreateSchedule(
        **base("create", HOST, seconds),
        username="Host",
        title="Album launch",
        category="music",
        scheduled_for=at(seconds) + timedelta(seconds=starts_in),
    )


def scheduled() -> StreamScheduled:
    return StreamScheduled(
        schedule_id="sc-1",
        user_id=HOST,
        username="Host",
        title="Album launch",
        category="music",
        notify_followers=True,
        scheduled_for=at(3600),
        created_at=at(0),
    )


def reminded(user: str) -> ReminderSet:
    return ReminderSet(user_id=user, set_at=at(10))


def notice(kind: str, seconds: float, *recipients: str) -> RemindersNotified:
    return RemindersNotified(
        notification_id=notification_id("sc-1", kind),
        kind=kind,  # type: ignore[arg-type]
        channel_id=HOST,
        schedule_id="sc-1",
        title="Album launch",
        actor_name="Host",
        recipients=list(recipients),
        sent_at=at(seconds),
    )


def test_a_stream_is_scheduled_only_in_the_future() -> None:
    [event] = SCHEDULE.given().when(create(0)).events()
    assert isinstance(event, StreamScheduled) and event.scheduled_for == at(3600) and event.user_id == HOST
    SCHEDULE.given().when(create(0, starts_in=0)).then_rejected("schedule-in-past")
    SCHEDULE.given(scheduled()).when(create(5)).then_rejected("schedule-exists")


def test_reminders_are_set_once() -> None:
    SCHEDULE.given(scheduled()).when(SetReminder(**base("remind", "ann", 10))).then(reminded("ann"))
    SCHEDULE.given(scheduled(), reminded("ann")).when(SetReminder(**base("remind", "ann", 11))).then()
    SCHEDULE.given().when(SetReminder(**base("remind", "ann", 11))).then_rejected("schedule-not-found")


def test_cancelling_notifies_reminder_holders() -> None:
    SCHEDULE.given(scheduled(), reminded("bob"), reminded("ann")).when(
        CancelSchedule(**base("cancel", HOST, 20))
    ).then(ScheduleCancelled(cancelled_at=at(20)), notice("schedule_cancelled", 20, "ann", "bob"))


def test_only_the_broadcaster_cancels_and_a_cancelled_schedule_is_closed() -> None:
    SCHEDULE.given(scheduled()).when(CancelSchedule(**base("cancel", "ann", 20))).then_rejected(
        "not-schedule-owner"
    )
    closed = SCHEDULE.given(scheduled(), ScheduleCancelled(cancelled_at=at(20)))
    closed.when(SetReminder(**base("remind", "ann", 30))).then_rejected("schedule-closed")


def test_the_timer_fires_only_when_the_time_has_come_and_only_once() -> None:
    SCHEDULE.given(scheduled()).when(FireSchedule(**base("fire", "system", 3599))).then()
    SCHEDULE.given(scheduled(), reminded("ann")).when(FireSchedule(**base("fire", "system", 3600))).then(
        ScheduleDue(due_at=at(3600)), notice("schedule_due", 3600, "ann")
    )
    SCHEDULE.given(scheduled(), ScheduleDue(due_at=at(3600))).when(
        FireSchedule(**base("fire", "system", 3660))
    ).then()


def test_a_stream_started_by_the_broadcaster_with_the_schedule_links_it() -> None:
    mark = MarkScheduleStarted(**base("mark", HOST, 3590), stream_id="st-9", broadcaster_id=HOST)
    SCHEDULE.given(scheduled()).when(mark).then(ScheduleStarted(stream_id="st-9", started_at=at(3590)))
    stranger = mark.model_copy(update={"broadcaster_id": "someone-else"})
    SCHEDULE.given(scheduled()).when(stranger).then()
