"""Follows and the notification inbox (API.md "Social")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok.api.auth import Principal
from spaktok.api.deps import CommandMeta, CurrentUser, Services, ServicesDep, UserPath
from spaktok.api.problems import Problem
from spaktok.api.responses import answer
from spaktok.api.routes import notify
from spaktok.commands.broadcasters import FollowUser, UnfollowUser
from spaktok.projections import social

router = APIRouter(tags=["social"])


@router.post("/v1/users/{user_id}/follow")
async def follow(user_id: UserPath, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    """Following twice is a no-op; the channel's next stream start notifies this user."""
    return await _change_follow(FollowUser, user_id, user, services)


@router.delete("/v1/users/{user_id}/follow")
async def unfollow(user_id: UserPath, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    return await _change_follow(UnfollowUser, user_id, user, services)


async def _change_follow(
    kind: type[FollowUser] | type[UnfollowUser], followee: str, user: Principal, services: Services
) -> JSONResponse:
    following = kind is FollowUser
    meta = CommandMeta.for_request(user, f"{'follow' if following else 'unfollow'}:{followee}")
    command = kind(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        user_id=user.user_id,
        followee_id=followee,
    )
    outcome = await services.bus.execute(command)
    return answer(outcome, meta.command_id, lambda o: {"userId": followee, "following": following})


@router.get("/v1/notifications")
async def notifications(
    user: CurrentUser,
    services: ServicesDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The caller's inbox, newest first, and how many of its notices the caller has not read."""
    try:
        items, next_cursor = await run_in_threadpool(
            social.inbox, services.engine, user.user_id, cursor=cursor, limit=limit, roles=user.roles
        )
    except ValueError as exc:
        raise Problem(400, "invalid-cursor", "the cursor was not produced by this endpoint") from exc
    unread = await notify.unread_of(user, services)
    return {"notifications": items, "nextCursor": next_cursor, "unread": unread}
