"""Scheduled streams (spec §2.7): announced, reminded, cancelled, or started."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from spaktok.events.base import Event, register_event


class ScheduleEvent(Event):
    aggregate_type: ClassVar[str] = "schedule"


@register_event
class StreamScheduled(ScheduleEvent):
    type: Literal["schedules.StreamScheduled"] = "schedules.StreamScheduled"
    schedule_id: str
    user_id: str
    username: str
    title: str
    description: str = ""
    thumbnail_url: str | None = None
    category: str
    tags: list[str] = []
    notify_followers: bool
    scheduled_for: datetime
    created_at: datetime


@register_event
class ReminderSet(ScheduleEvent):
    type: Literal["schedules.ReminderSet"] = "schedules.ReminderSet"
    user_id: str
    set_at: datetime


@register_event
class ScheduleCancelled(ScheduleEvent):
    type: Literal["schedules.ScheduleCancelled"] = "schedules.ScheduleCancelled"
    cancelled_at: datetime


@register_event
class ScheduleDue(ScheduleEvent):
    """The announced time came: reminder holders (and followers, if asked) are notified."""

    type: Literal["schedules.ScheduleDue"] = "schedules.ScheduleDue"
    due_at: datetime


@register_event
class ScheduleReminded(ScheduleEvent):
    """The reminder time (`scheduled_for` minus the lead) came: reminder holders (and followers, if
    asked) are told ahead. Once per schedule: a second reminder command finds it already sent."""

    type: Literal["schedules.ScheduleReminded"] = "schedules.ScheduleReminded"
    reminded_at: datetime
    lead_s: int


@register_event
class ScheduleStarted(ScheduleEvent):
    type: Literal["schedules.ScheduleStarted"] = "schedules.ScheduleStarted"
    stream_id: str
    started_at: datetime


@register_event
class RemindersNotified(ScheduleEvent):
    """A notice to reminder holders (published on `spaktok.notifications`, like FollowersNotified)."""

    type: Literal["schedules.RemindersNotified"] = "schedules.RemindersNotified"
    notice: ClassVar[bool] = True
    notification_id: str
    kind: Literal["schedule_due", "schedule_cancelled", "schedule_reminder"]
    channel_id: str
    schedule_id: str
    title: str
    actor_name: str
    recipients: list[str]
    sent_at: datetime


@register_event
class ScheduleCommandRejected(ScheduleEvent):
    type: Literal["schedules.CommandRejected"] = "schedules.CommandRejected"
    command_type: str
    reason: str
    detail: str
