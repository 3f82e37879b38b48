"""Chat and engagement: comments and likes (API.md "Chat and engagement")."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from spaktok.api.deps import CommandMeta, CurrentUser, IdempotencyKey, ServicesDep, StreamPath
from spaktok.api.problems import Problem
from spaktok.api.responses import answer, event_payload
from spaktok.api.schemas import CommentBody, LikeBody
from spaktok.commands.outcome import Outcome
from spaktok.commands.stream_state import ANONYMOUS_ACTION
from spaktok.commands.streams import SendComment
from spaktok.events.envelope import derive_id
from spaktok.projections import streams_views

router = APIRouter(prefix="/v1/streams/{stream_id}", tags=["chat"])


@router.post("/comments", status_code=201)
async def send_comment(
    stream_id: StreamPath,
    body: CommentBody,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    settings = services.settings
    text = body.text.strip()
    if not text:
        raise Problem(422, "invalid-comment", "a comment cannot be empty or only whitespace")
    if len(text) > settings.comment_max_length:
        raise Problem(
            422, "invalid-comment", f"a comment is at most {settings.comment_max_length} characters"
        )
    meta = CommandMeta.for_request(user, f"comment:{stream_id}", idempotency_key)
    command = SendComment(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        stream_id=stream_id,
        username=user.name,
        user_profile_image=user.picture,
        text=text,
        max_length=settings.comment_max_length,
        min_interval_ms=settings.comment_min_interval_ms,
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        posted = event_payload(outcome, "streams.CommentPosted") or {}
        return {
            "commentId": posted.get("comment_id"),
            "streamId": stream_id,
            "userId": user.user_id,
            "username": posted.get("username"),
            "userProfileImage": posted.get("user_profile_image"),
            "text": posted.get("text"),
            "type": posted.get("comment_type"),
            "timestamp": posted.get("posted_at"),
            "isPinned": False,
            "isDeleted": False,
        }

    return answer(outcome, meta.command_id, build, status=201)


@router.get("/comments")
async def list_comments(
    stream_id: StreamPath,
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    comments = await run_in_threadpool(
        streams_views.list_comments, services.engine, stream_id, before=before, limit=limit
    )
    next_before = comments[-1]["sequence"] if len(comments) == limit else None
    return {"comments": comments, "nextBefore": next_before}


@router.post("/likes")
async def like_stream(
    stream_id: StreamPath,
    body: LikeBody,
    user: CurrentUser,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    if idempotency_key is not None:
        action_id = derive_id("like", user.user_id, stream_id, idempotency_key)
    else:
        action_id = f"{ANONYMOUS_ACTION}{uuid.uuid4()}"  # no key: nothing to remember
    batch_id, outcome = await services.batcher.like(stream_id, action_id, user.user_id, body.count)

    def build(outcome: Outcome) -> dict[str, Any]:
        recorded = event_payload(outcome, "streams.LikesRecorded") or {}
        counted = action_id in recorded.get("action_ids", [])
        return {
            "streamId": stream_id,
            "accepted": body.count if counted else 0,
            "likes": outcome.stats.get("likes"),
        }

    return answer(outcome, batch_id, build)
