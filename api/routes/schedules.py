"""Scheduled streams (API.md "Schedules"): announce, list, cancel, remind."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok.api.deps import CommandMeta, CurrentUser, IdempotencyKey, SchedulePath, ServicesDep
from spaktok.api.problems import Problem
from spaktok.api.responses import answer
from spaktok.api.schemas import ScheduleBody
from spaktok.api.suspension import refuse_if_suspended
from spaktok.commands.schedules import CancelSchedule, CreateSchedule, SetReminder
from spaktok.events.envelope import derive_id
from spaktok.projections import social

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


@router.post("", status_code=201)
async def create_schedule(
    body: ScheduleBody, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Future times only (422 `schedule-in-past`). Start the stream later with this `scheduleId`.
    A suspended account may not (403 `account-suspended`): scheduling announces to its followers."""
    await refuse_if_suspended(services, user, "schedule a stream")
    meta = CommandMeta.for_request(user, "schedule", idempotency_key)
    schedule_id = "sc_" + (
        derive_id("schedule", meta.command_id).replace("-", "")[:24]
        if idempotency_key
        else uuid.uuid4().hex[:24]
    )
    command = CreateSchedule(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        schedule_id=schedule_id,
        username=user.name,
        **body.model_dump(),
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Any) -> dict[str, Any]:
        return {
            "scheduleId": schedule_id,
            "userId": user.user_id,
            "status": "scheduled",
            "scheduledFor": body.scheduled_for.isoformat().replace("+00:00", "Z"),
            **body.model_dump(by_alias=True, exclude={"scheduled_for"}),
        }

    return answer(outcome, meta.command_id, build, status=201)


@router.get("")
async def list_schedules(
    user: CurrentUser,
    services: ServicesDep,
    user_id: Annotated[str | None, Query(alias="userId", max_length=128)] = None,
    upcoming: bool = True,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Soonest first; `upcoming=false` includes started and cancelled ones."""
    items = await run_in_threadpool(
        social.list_schedules, services.engine, user_id=user_id, upcoming_only=upcoming, limit=limit
    )
    return {"schedules": items}


@router.get("/{schedule_id}")
async def get_schedule(schedule_id: SchedulePath, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    doc = await run_in_threadpool(social.get_schedule, services.engine, schedule_id)
    if doc is None:
        raise Problem(404, "schedule-not-found", "no schedule with this id")
    return doc


@router.delete("/{schedule_id}")
async def cancel_schedule(
    schedule_id: SchedulePath, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Broadcaster only; everyone who set a reminder is notified."""
    meta = CommandMeta.for_request(user, f"cancel-schedule:{schedule_id}")
    command = CancelSchedule(
        command_id=meta.command_id, issued_at=meta.issued_at, actor_id=user.user_id, schedule_id=schedule_id
    )
    outcome = await services.bus.execute(command)
    return answer(outcome, meta.command_id, lambda o: {"scheduleId": schedule_id, "status": "cancelled"})


@router.post("/{schedule_id}/reminders")
async def set_reminder(schedule_id: SchedulePath, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    """Setting it twice is a no-op; the reminder fires when the scheduled time comes."""
    meta = CommandMeta.for_request(user, f"reminder:{schedule_id}")
    command = SetReminder(
        command_id=meta.command_id, issued_at=meta.issued_at, actor_id=user.user_id, schedule_id=schedule_id
    )
    outcome = await services.bus.execute(command)
    return answer(
        outcome, meta.command_id, lambda o: {"scheduleId": schedule_id, "reminderSet": True, **o.stats}
    )
