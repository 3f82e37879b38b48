"""Commands on a scheduled stream; the aggregate id is the schedule id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from spaktok.commands.base import Command, register_command


class ScheduleCommand(Command):
    aggregate_type: ClassVar[str] = "schedule"
    schedule_id: str = Field(min_length=1, max_length=64)

    @property
    def aggregate_id(self) -> str:
        return self.schedule_id


@register_command
class CreateSchedule(ScheduleCommand):
    type: Literal["schedules.CreateSchedule"] = "schedules.CreateSchedule"
    username: str
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    thumbnail_url: str | None = Field(None, max_length=500)
    category: str = Field(min_length=1, max_length=64)
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=20
    )
    notify_followers: bool = True
    scheduled_for: datetime


@register_command
class SetReminder(ScheduleCommand):
    type: Literal["schedules.SetReminder"] = "schedules.SetReminder"


@register_command
class CancelSchedule(ScheduleCommand):
    type: Literal["schedules.CancelSchedule"] = "schedules.CancelSchedule"


@register_command
class FireSchedule(ScheduleCommand):
    """Internal, from the worker's timer once the scheduled time has come."""

    type: Literal["schedules.FireSchedule"] = "schedules.FireSchedule"


@register_command
class RemindSchedule(ScheduleCommand):
    """Internal, from the worker's timer once `scheduled_for - lead` has come (settings'
    `schedule_reminder_lead_s`; the lead travels on the command so the decision is logged with it)."""

    type: Literal["schedules.RemindSchedule"] = "schedules.RemindSchedule"
    lead_s: int = Field(ge=1)


@register_command
class MarkScheduleStarted(ScheduleCommand):
    """Internal: a stream started with this `scheduleId` (follow-up of StreamStarted)."""

    type: Literal["schedules.MarkScheduleStarted"] = "schedules.MarkScheduleStarted"
    stream_id: str
    broadcaster_id: str
