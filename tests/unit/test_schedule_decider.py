"""The schedule decider in given/when/then form: future only, reminders, cancel, reminded ahead,
due, started; and what its runner forwards to the followers' fan-out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gwt import Aggregate, at

from spaktok.commands.audiences import AUDIENCE_SHARDS, NotifyFollowers
from spaktok.commands.base import Command
from spaktok.commands.schedule_decide import (
    ScheduleState,
    decide,
    evolve,
    notification_id,
    reminder_due,
    thaw,
)
from spaktok.commands.schedules import (
    CancelSchedule,
    CreateSchedule,
    FireSchedule,
    MarkScheduleStarted,
    RemindSchedule,
    SetReminder,
)
from spaktok.events.schedules import (
    ReminderSet,
    RemindersNotified,
    ScheduleCancelled,
    ScheduleDue,
    ScheduleReminded,
    ScheduleStarted,
    StreamScheduled,
)
from spaktok.processors.core import execute
from spaktok.processors.schedules import SCHEDULES

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


LEAD = 900  # the default reminder lead: 15 minutes


def remind(seconds: float, lead: int = LEAD) -> RemindSchedule:
    return RemindSchedule(**base("remind-ahead", "system", seconds), lead_s=lead)


def test_the_reminder_goes_out_once_when_the_lead_comes() -> None:
    SCHEDULE.given(scheduled(), reminded("ann")).when(remind(3600 - LEAD - 1)).then()  # not yet
    SCHEDULE.given(scheduled(), reminded("bob"), reminded("ann")).when(remind(3600 - LEAD)).then(
        ScheduleReminded(reminded_at=at(3600 - LEAD), lead_s=LEAD),
        notice("schedule_reminder", 3600 - LEAD, "ann", "bob"),
    )
    already = SCHEDULE.given(scheduled(), ScheduleReminded(reminded_at=at(2700), lead_s=LEAD))
    already.when(remind(2760)).then()  # a second timer tick (or one after a restart): nothing


def test_no_reminder_after_cancel_or_an_early_start_or_once_the_time_has_come() -> None:
    cancelled = SCHEDULE.given(scheduled(), reminded("ann"), ScheduleCancelled(cancelled_at=at(20)))
    cancelled.when(remind(3000)).then()
    started = SCHEDULE.given(
        scheduled(), reminded("ann"), ScheduleStarted(stream_id="st-9", started_at=at(600))
    )
    started.when(remind(3000)).then()
    SCHEDULE.given(scheduled(), reminded("ann")).when(remind(3600)).then()  # the due notice speaks now
    SCHEDULE.given(scheduled(), reminded("ann"), ScheduleDue(due_at=at(3600))).when(remind(3000)).then()


def test_a_schedule_made_inside_its_lead_gets_no_separate_reminder() -> None:
    late = scheduled().model_copy(update={"created_at": at(3600 - 600)})  # 10 min ahead, lead 15
    SCHEDULE.given(late, reminded("ann")).when(remind(3100)).then()


def test_the_reminder_rule_is_the_timers_rule() -> None:
    state = SCHEDULE.given(scheduled()).state

    def ms(seconds: float) -> int:
        return int(at(seconds).timestamp() * 1000)

    assert not reminder_due(state, ms(2699), LEAD * 1000)
    assert reminder_due(state, ms(2700), LEAD * 1000)
    assert not reminder_due(state, ms(3600), LEAD * 1000)
    assert not reminder_due(state, ms(2700), 0)  # a lead of 0 turns reminders off


def _follower_notices(command: Command, state: ScheduleState) -> list[tuple[str, int, str]]:
    """What the schedule runner forwards to the channel's audience shards for this command."""
    forwards = execute(SCHEDULES, command, thaw(state)).forwards
    notify = [f.command for f in forwards if isinstance(f.command, NotifyFollowers)]
    return [(n.kind, n.shard, n.notification_id) for n in notify]


def test_followers_hear_of_the_announcement_the_reminder_and_the_due_time() -> None:
    created = _follower_notices(create(0), SCHEDULE.given().state)
    assert created == [
        ("schedule_announced", shard, notification_id("sc-1", "schedule_announced"))
        for shard in range(AUDIENCE_SHARDS)
    ]
    reminder = _follower_notices(remind(2700), SCHEDULE.given(scheduled()).state)
    assert {kind for kind, _, _ in reminder} == {"schedule_reminder"} and len(reminder) == AUDIENCE_SHARDS
    due = _follower_notices(FireSchedule(**base("fire", "system", 3600)), SCHEDULE.given(scheduled()).state)
    assert {kind for kind, _, _ in due} == {"schedule_due"} and len(due) == AUDIENCE_SHARDS
    # nothing decided, nothing forwarded: a second reminder tick tells nobody again
    again = SCHEDULE.given(scheduled(), ScheduleReminded(reminded_at=at(2700), lead_s=LEAD)).state
    assert _follower_notices(remind(2760), again) == []


def test_followers_hear_nothing_when_the_broadcaster_did_not_ask() -> None:
    quiet = create(0).model_copy(update={"notify_followers": False})
    assert _follower_notices(quiet, SCHEDULE.given().state) == []
    silent = scheduled().model_copy(update={"notify_followers": False})
    assert _follower_notices(remind(2700), SCHEDULE.given(silent).state) == []
