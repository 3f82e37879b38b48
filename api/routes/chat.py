"""Chat and engagement: comments and likes (API.md "Chat and engagement")."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok.api.auth import Principal
from spaktok.api.deps import CommandMeta, CommentPath, CurrentUser, IdempotencyKey, ServicesDep, StreamPath
from spaktok.api.problems import Problem
from spaktok.api.ratelimit import clip_like_taps
from spaktok.api.readable import StreamContent, admit_participant, shared_facts
from spaktok.api.responses import answer, event_payload
from spaktok.api.routes.moderation import is_platform_moderator
from spaktok.api.schemas import CommentBody, LikeBody
from spaktok.api.suspension import refuse_if_suspended
from spaktok.commands.outcome import Outcome
from spaktok.commands.stream_shards import shard_of
from spaktok.commands.stream_state import ANONYMOUS_ACTION
from spaktok.commands.streams import DeleteComment, PinComment, SendComment, UnpinComment
from spaktok.events.envelope import derive_id
from spaktok.projections import chat_history, streams_views

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
    chat_filter = services.chat_filter
    if chat_filter.unknown_words(text):
        text = await run_in_threadpool(chat_filter.mask, text)  # a model call: off the event loop
    else:
        text = chat_filter.mask(text)
    await refuse_if_suspended(services, user, "comment")
    await admit_participant(services, user, stream_id)
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
    stream: StreamContent,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1)] = None,
    types: Annotated[
        str | None,
        Query(
            max_length=100,
            description="comma-separated: text, gift, system (default text: API.md's comments)",
        ),
    ] = None,
) -> dict[str, Any]:
    """Chat history, newest first in the stream's log order; the access policy as for every read."""
    wanted = history_types(types)
    comments = await run_in_threadpool(
        streams_views.list_comments, services.engine, stream_id, before=before, limit=limit, types=wanted
    )
    next_before = comments[-1]["sequence"] if len(comments) == limit else None
    return {"comments": comments, "nextBefore": next_before}


def history_types(types: str | None) -> tuple[str, ...]:
    """`?types=text,gift` as a tuple; unknown or feed-only types are a 422 problem."""
    if types is None:
        return chat_history.DEFAULT_TYPES
    wanted = tuple(dict.fromkeys(t.strip() for t in types.split(",")))
    unknown = [t for t in wanted if t not in chat_history.HISTORY_TYPES]
    if unknown or not wanted:
        feed_only = " (joins and likes are in the live feed only)" if {"join", "like"} & set(unknown) else ""
        raise Problem(
            422,
            "invalid-comment-types",
            f"types is a comma-separated list of {', '.join(chat_history.HISTORY_TYPES)}; "
            f"not {', '.join(unknown) or 'empty'}{feed_only}",
        )
    return wanted


async def _existing_comment(services: Any, stream_id: str, comment_id: str) -> dict[str, Any]:
    comment = await run_in_threadpool(streams_views.get_comment, services.engine, stream_id, comment_id)
    if comment is None:
        raise Problem(404, "comment-not-found", "no comment with this id on this stream")
    return comment


@router.delete("/comments/{comment_id}")
async def delete_comment(
    stream_id: StreamPath,
    comment_id: CommentPath,
    user: CurrentUser,
    services: ServicesDep,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> JSONResponse:
    """Broadcaster, the stream's moderators or the platform's moderation team; deleting twice is a no-op."""
    comment = await _existing_comment(services, stream_id, comment_id)
    deleted = {"streamId": stream_id, "commentId": comment_id, "isDeleted": True}
    if comment["isDeleted"]:
        return JSONResponse(deleted)
    meta = CommandMeta.for_request(user, f"delete-comment:{stream_id}:{comment_id}")
    command = DeleteComment(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        stream_id=stream_id,
        comment_id=comment_id,
        reason=reason,
        platform_moderator=is_platform_moderator(user),
    )
    outcome = await services.bus.execute(command)
    return answer(outcome, meta.command_id, lambda o: deleted)


def _pin_command(
    kind: type[PinComment] | type[UnpinComment],
    meta: CommandMeta,
    user: Principal,
    stream_id: str,
    comment_id: str,
) -> PinComment | UnpinComment:
    return kind(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        stream_id=stream_id,
        comment_id=comment_id,
    )


@router.post("/comments/{comment_id}/pin")
async def pin_comment(
    stream_id: StreamPath, comment_id: CommentPath, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Broadcaster only; pinning a comment unpins the one pinned before."""
    comment = await _existing_comment(services, stream_id, comment_id)
    if comment["isDeleted"]:
        raise Problem(409, "comment-deleted", "a deleted comment cannot be pinned")
    meta = CommandMeta.for_request(user, f"pin-comment:{stream_id}:{comment_id}")
    command = _pin_command(PinComment, meta, user, stream_id, comment_id)
    outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        pinned = event_payload(outcome, "streams.CommentPinned") or {}
        return {
            "streamId": stream_id,
            "commentId": comment_id,
            "isPinned": True,
            "unpinnedCommentId": pinned.get("previous_comment_id"),
        }

    return answer(outcome, meta.command_id, build)


@router.delete("/comments/{comment_id}/pin")
async def unpin_comment(
    stream_id: StreamPath, comment_id: CommentPath, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Broadcaster only; a comment that is not the pinned one stays as it is (the same answer)."""
    await _existing_comment(services, stream_id, comment_id)
    meta = CommandMeta.for_request(user, f"unpin-comment:{stream_id}:{comment_id}")
    command = _pin_command(UnpinComment, meta, user, stream_id, comment_id)
    outcome = await services.bus.execute(command)
    done = {"streamId": stream_id, "commentId": comment_id, "isPinned": False}
    return answer(outcome, meta.command_id, lambda o: done)


@router.post("/likes")
async def like_stream(
    stream_id: StreamPath,
    body: LikeBody,
    user: CurrentUser,
    services: ServicesDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    await admit_participant(services, user, stream_id)
    if idempotency_key is not None:
        action_id = derive_id("like", user.user_id, stream_id, idempotency_key)
    else:
        action_id = f"{ANONYMOUS_ACTION}{uuid.uuid4()}"  # no key: nothing to remember
    # taps beyond the user's allowance on this stream are dropped; none left -> 429 (api/ratelimit.py)
    taps = await clip_like_taps(request, user.user_id, stream_id, body.count)
    facts = await shared_facts(services.engine, stream_id)
    shards = facts.like_shards if facts is not None else 0
    if shards:  # a hot stream: the user's like shard counts it (commands/stream_shards.py)
        shard = shard_of(user.user_id, shards)
        batch_id, outcome = await services.batcher.shard_like(stream_id, shard, action_id, user.user_id, taps)
    else:
        batch_id, outcome = await services.batcher.like(stream_id, action_id, user.user_id, taps)

    def build(outcome: Outcome) -> dict[str, Any]:
        kind = "stream_shards.ShardLikesRecorded" if shards else "streams.LikesRecorded"
        recorded = event_payload(outcome, kind) or {}
        counted = action_id in recorded.get("action_ids", [])
        return {
            "streamId": stream_id,
            "accepted": taps if counted else 0,
            # a sharded stream's total is folded from its shards: the document and feed show it
            "likes": outcome.stats.get("likes"),
        }

    return answer(outcome, batch_id, build)
