"""Stream moderation (API.md "Moderation": bans, timeouts, moderators, reports) and multi-guest."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok.api.auth import Principal
from spaktok.api.deps import CommandMeta, CurrentUser, Services, ServicesDep, StreamPath, UserPath
from spaktok.api.readable import ModeratedStream, admit_participant
from spaktok.api.responses import answer
from spaktok.api.schemas import BanBody, ModeratorBody, ReportBody, TimeoutBody
from spaktok.commands.base import Command
from spaktok.commands.streams import (
    AcceptGuest,
    AddModerator,
    BanUser,
    InviteGuest,
    LiftTimeout,
    RemoveGuest,
    RemoveModerator,
    ReportStream,
    TimeoutUser,
    UnbanUser,
)
from spaktok.projections import moderation

router = APIRouter(prefix="/v1/streams/{stream_id}", tags=["moderation"])

PLATFORM_MODERATION_ROLES = frozenset({"moderation", "admin"})


def is_platform_moderator(user: Principal) -> bool:
    return bool(user.roles & PLATFORM_MODERATION_ROLES)


async def _execute(
    services: Services, user: Principal, scope: str, build: Any, answer_with: dict[str, Any]
) -> JSONResponse:
    meta = CommandMeta.for_request(user, scope)
    command: Command = build(command_id=meta.command_id, issued_at=meta.issued_at, actor_id=user.user_id)
    outcome = await services.bus.execute(command)
    return answer(outcome, meta.command_id, lambda o: answer_with)


@router.post("/bans")
async def ban(stream_id: StreamPath, body: BanBody, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    """Removes the user from the audience, hides their recent comments, refuses them from now on."""
    window = services.settings.ban_delete_comments_window_s

    def build(**meta: Any) -> BanUser:
        return BanUser(
            **meta,
            stream_id=stream_id,
            target_user_id=body.user_id,
            reason=body.reason,
            platform_moderator=is_platform_moderator(user),
            delete_comments_window_s=window,
        )

    done = {"streamId": stream_id, "userId": body.user_id, "banned": True}
    return await _execute(services, user, f"ban:{stream_id}:{body.user_id}", build, done)


@router.delete("/bans/{user_id}")
async def unban(
    stream_id: StreamPath, user_id: UserPath, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    def build(**meta: Any) -> UnbanUser:
        return UnbanUser(
            **meta,
            stream_id=stream_id,
            target_user_id=user_id,
            platform_moderator=is_platform_moderator(user),
        )

    done = {"streamId": stream_id, "userId": user_id, "banned": False}
    return await _execute(services, user, f"unban:{stream_id}:{user_id}", build, done)


@router.post("/timeouts")
async def timeout(
    stream_id: StreamPath, body: TimeoutBody, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Mute for 1 s to 14 days; a new timeout replaces the previous one. Muted users still watch."""

    def build(**meta: Any) -> TimeoutUser:
        return TimeoutUser(
            **meta,
            stream_id=stream_id,
            target_user_id=body.user_id,
            reason=body.reason,
            duration_s=body.duration_seconds,
            platform_moderator=is_platform_moderator(user),
        )

    done = {"streamId": stream_id, "userId": body.user_id, "durationSeconds": body.duration_seconds}
    return await _execute(services, user, f"timeout:{stream_id}:{body.user_id}", build, done)


@router.delete("/timeouts/{user_id}")
async def lift_timeout(
    stream_id: StreamPath, user_id: UserPath, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Ends a timeout early; a user not timed out stays as they are (the same answer)."""

    def build(**meta: Any) -> LiftTimeout:
        return LiftTimeout(
            **meta,
            stream_id=stream_id,
            target_user_id=user_id,
            platform_moderator=is_platform_moderator(user),
        )

    done = {"streamId": stream_id, "userId": user_id, "timedOut": False}
    return await _execute(services, user, f"lift-timeout:{stream_id}:{user_id}", build, done)


@router.post("/moderators")
async def add_moderator(
    stream_id: StreamPath, body: ModeratorBody, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    def build(**meta: Any) -> AddModerator:
        return AddModerator(**meta, stream_id=stream_id, target_user_id=body.user_id)

    done = {"streamId": stream_id, "userId": body.user_id, "moderator": True}
    return await _execute(services, user, f"add-moderator:{stream_id}:{body.user_id}", build, done)


@router.delete("/moderators/{user_id}")
async def remove_moderator(
    stream_id: StreamPath, user_id: UserPath, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    def build(**meta: Any) -> RemoveModerator:
        return RemoveModerator(**meta, stream_id=stream_id, target_user_id=user_id)

    done = {"streamId": stream_id, "userId": user_id, "moderator": False}
    return await _execute(services, user, f"remove-moderator:{stream_id}:{user_id}", build, done)


@router.post("/reports")
async def report(
    stream_id: StreamPath, body: ReportBody, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Counted once per reporter per window; enough distinct reporters flag, then suspend the stream.
    A reporter must be able to see the stream; a user banned from it still may report it."""
    await admit_participant(services, user, stream_id, banned_may=True)
    settings = services.settings

    def build(**meta: Any) -> ReportStream:
        return ReportStream(
            **meta,
            stream_id=stream_id,
            reason=body.reason,
            flag_at=settings.report_flag_at,
            suspend_at=settings.report_suspend_at,
            window_s=settings.report_window_s,
        )

    done = {"streamId": stream_id, "reported": True}
    return await _execute(services, user, f"report:{stream_id}", build, done)


@router.get("/moderation-log")
async def moderation_log(
    stream_id: StreamPath,
    stream: ModeratedStream,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The broadcaster, the stream's moderators and the platform's moderation team (`moderator_access`)."""
    entries = await run_in_threadpool(moderation.moderation_log, services.engine, stream_id, limit=limit)
    return {"streamId": stream_id, "entries": entries}


@router.post("/guests")
async def invite_guest(
    stream_id: StreamPath, body: ModeratorBody, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Multi-guest: the broadcaster invites a user on stage (they are told in their inbox)."""
    limit = services.settings.max_guests

    def build(**meta: Any) -> InviteGuest:
        return InviteGuest(**meta, stream_id=stream_id, target_user_id=body.user_id, max_guests=limit)

    done = {"streamId": stream_id, "userId": body.user_id, "status": "invited"}
    return await _execute(services, user, f"invite-guest:{stream_id}:{body.user_id}", build, done)


@router.post("/guests/accept")
async def accept_guest(stream_id: StreamPath, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    """The invited user goes on stage."""

    def build(**meta: Any) -> AcceptGuest:
        return AcceptGuest(**meta, stream_id=stream_id)

    done = {"streamId": stream_id, "userId": user.user_id, "status": "joined"}
    return await _execute(services, user, f"accept-guest:{stream_id}", build, done)


@router.delete("/guests/{user_id}")
async def remove_guest(
    stream_id: StreamPath, user_id: UserPath, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """The broadcaster takes a guest off stage or withdraws an invitation; a guest leaves or declines."""

    def build(**meta: Any) -> RemoveGuest:
        return RemoveGuest(**meta, stream_id=stream_id, target_user_id=user_id)

    done = {"streamId": stream_id, "userId": user_id, "status": "removed"}
    return await _execute(services, user, f"remove-guest:{stream_id}:{user_id}", build, done)
