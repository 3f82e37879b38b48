"""A user's channel (issue #18, spec §9.1): live now, the channel page, followed channels live, and
the caller's own channel moderators (`/v1/me/moderators`, decided by the broadcaster aggregate).

Every answer is filtered by discovery's visibility rule (`streams_views.VISIBLE`, the SQL form of
`api/access.py`): a stream the caller may not see is not there. `GET /v1/users/{id}/live` answers
`{"live": false}` for it, the answer for a channel that is not live, so that no status tells an
outsider a hidden stream exists (docs/api.md "Channels").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok.api.access import STAFF_ROLES
from spaktok.api.auth import Principal
from spaktok.api.deps import CommandMeta, CurrentUser, Services, ServicesDep, UserPath
from spaktok.api.problems import Problem
from spaktok.api.readable import is_known_minor
from spaktok.api.responses import answer
from spaktok.api.routes.streams import with_thumbnail
from spaktok.api.schemas import ModeratorBody
from spaktok.commands.broadcasters import AddChannelModerator, RemoveChannelModerator
from spaktok.projections import channels_views
from spaktok.projections.channels_views import Caller

router = APIRouter(tags=["channels"])

Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=100)]


def caller_of(user: Principal) -> Caller:
    return Caller(user.user_id, staff=bool(user.roles & STAFF_ROLES), minor=is_known_minor(user))


def _bad_cursor() -> Problem:
    return Problem(400, "invalid-cursor", "the cursor is not one this API returned; drop it to start over")


@router.get("/v1/users/{user_id}/live")
async def channel_live(user_id: UserPath, user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Is the user live now, in a stream the caller may see? `{"live": false}` otherwise."""
    doc = await run_in_threadpool(channels_views.live_stream_of, services.engine, user_id, caller_of(user))
    if doc is None:
        return {"userId": user_id, "live": False}
    return {"userId": user_id, "live": True, **doc}


@router.get("/v1/users/{user_id}/streams")
async def channel_streams(
    user_id: UserPath, user: CurrentUser, services: ServicesDep, cursor: Cursor = None, limit: Limit = 20
) -> dict[str, Any]:
    """The channel page: the user's streams the caller may see, newest first, with their replays."""
    try:
        docs, next_cursor = await run_in_threadpool(
            channels_views.streams_of, services.engine, user_id, caller_of(user), cursor=cursor, limit=limit
        )
    except (ValueError, TypeError) as exc:
        raise _bad_cursor() from exc
    shown = [_with_replay(with_thumbnail(d, services.settings, user.user_id)) for d in docs]
    return {"streams": shown, "nextCursor": next_cursor}


@router.get("/v1/me/following/live")
async def following_live(
    user: CurrentUser, services: ServicesDep, cursor: Cursor = None, limit: Limit = 20
) -> dict[str, Any]:
    """The channels the caller follows that are live now in a stream the caller may see."""
    try:
        docs, next_cursor = await run_in_threadpool(
            channels_views.followed_live, services.engine, caller_of(user), cursor=cursor, limit=limit
        )
    except (ValueError, TypeError) as exc:
        raise _bad_cursor() from exc
    shown = [with_thumbnail(d, services.settings, user.user_id) for d in docs]
    return {"streams": shown, "nextCursor": next_cursor}


def _with_replay(doc: dict[str, Any]) -> dict[str, Any]:
    has_replay = bool(doc.pop("hasReplay", False))
    doc["hasReplay"] = has_replay
    doc["replayUrl"] = f"/v1/streams/{doc['streamId']}/replay" if has_replay else None
    return doc


@router.get("/v1/me/moderators")
async def channel_moderators(user: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """The moderators the caller named for their channel, longest-serving first."""
    moderators = await run_in_threadpool(channels_views.moderators_of, services.engine, user.user_id)
    return {"channelId": user.user_id, "moderators": moderators}


@router.post("/v1/me/moderators")
async def add_channel_moderator(
    body: ModeratorBody, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Name a moderator of every stream of the caller's channel, the live one included."""
    return await _change_moderator(AddChannelModerator, body.user_id, user, services)


@router.delete("/v1/me/moderators/{user_id}")
async def remove_channel_moderator(
    user_id: UserPath, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    return await _change_moderator(RemoveChannelModerator, user_id, user, services)


async def _change_moderator(
    kind: type[AddChannelModerator] | type[RemoveChannelModerator],
    moderator_id: str,
    user: Principal,
    services: Services,
) -> JSONResponse:
    adding = kind is AddChannelModerator
    meta = CommandMeta.for_request(user, f"{'add' if adding else 'remove'}-channel-moderator:{moderator_id}")
    command = kind(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        user_id=user.user_id,
        moderator_id=moderator_id,
    )
    outcome = await services.bus.execute(command)
    done = {"channelId": user.user_id, "userId": moderator_id, "channelModerator": adding}
    return answer(outcome, meta.command_id, lambda o: done)
