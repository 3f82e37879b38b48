"""Audience: join, leave, heartbeat, list active viewers (API.md "Viewers")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok import clock
from spaktok.api.access import STAFF_ROLES, StreamFacts, stream_access
from spaktok.api.auth import Principal
from spaktok.api.batching import member_answer
from spaktok.api.deps import CommandMeta, CurrentUser, IdempotencyKey, Services, ServicesDep, StreamPath
from spaktok.api.problems import Problem
from spaktok.api.readable import StreamContent, shared_facts, viewer_of, with_follows, youngest_age
from spaktok.api.responses import answer, event_payload
from spaktok.api.routes import streams
from spaktok.api.suspension import account_suspended
from spaktok.commands.outcome import Outcome
from spaktok.commands.stream_shards import shard_of
from spaktok.commands.streams import ArrivingViewer, JoinStream, LeaveStream, ViewerFacts
from spaktok.projections import social, streams_views

router = APIRouter(prefix="/v1/streams/{stream_id}", tags=["viewers"])


@router.post("/viewers")
async def join_stream(
    stream_id: StreamPath, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Refused before the command is sent when the read model's policy refuses (a private stream's
    outsider gets the 404 of a missing stream); the decider keeps its own checks."""
    meta = CommandMeta.for_request(user, f"join:{stream_id}", idempotency_key)
    doc = await run_in_threadpool(streams_views.get_stream, services.engine, stream_id)
    if doc is not None:  # a stream not projected yet is the decider's to judge
        facts = StreamFacts.from_document(doc)
        viewer = await with_follows(services.engine, facts, viewer_of(user))
        stream_access(facts, viewer, "watch").check()
        follows = viewer.follows
    else:
        follows = await run_in_threadpool(
            social.follows_channel_of_stream, services.engine, user.user_id, stream_id
        )
    arrival = ViewerFacts(
        username=user.name,
        user_profile_image=user.picture,
        age=youngest_age(user.birth_year),
        follows_broadcaster=follows,
        platform_moderator=bool(user.roles & STAFF_ROLES),
        country=country_code(user.country),
    )
    if idempotency_key is None and services.settings.join_batch_window_ms > 0:
        arriving = ArrivingViewer(user_id=user.user_id, **arrival.model_dump())
        command_id, outcome = await services.batcher.join(stream_id, arriving)
        outcome = outcome and member_answer(outcome, user.user_id)
    else:  # a retry with the key must get the first answer: the worker remembers it by command id
        command_id = meta.command_id
        command = JoinStream(
            command_id=command_id,
            issued_at=meta.issued_at,
            actor_id=user.user_id,
            stream_id=stream_id,
            **arrival.model_dump(),
        )
        outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        return {
            "streamId": stream_id,
            "playbackUrl": streams.playback_url(services.settings, stream_id, user.user_id),
            "viewerCount": outcome.stats.get("viewerCount"),
            "alreadyWatching": outcome.status == "noop",
        }

    return answer(outcome, command_id, build)


@router.delete("/viewers/me")
async def leave_stream(
    stream_id: StreamPath, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    meta = CommandMeta.for_request(user, f"leave:{stream_id}", idempotency_key)
    command = LeaveStream(
        command_id=meta.command_id, issued_at=meta.issued_at, actor_id=user.user_id, stream_id=stream_id
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        left = event_payload(outcome, "streams.ViewerLeft") or {}
        return {
            "streamId": stream_id,
            "watchTime": left.get("watch_time"),
            "viewerCount": left.get("viewer_count"),
        }

    return answer(outcome, meta.command_id, build)


def country_code(claim: object) -> str | None:
    """The token's `country` as ISO-3166 alpha-2 for demographics; anything else counts as unknown
    (a malformed claim must not refuse a join)."""
    if isinstance(claim, str) and len(claim) == 2 and claim.isascii() and claim.isalpha():
        return claim.upper()
    return None


@router.post("/heartbeat")
async def heartbeat(stream_id: StreamPath, user: CurrentUser, services: ServicesDep) -> JSONResponse:
    """The current stats and a fresh `playbackUrl`, or `playbackUrl: null` with `playbackRefused`
    (the problem slug) once the viewer may no longer watch: banned, refused by the policy after a
    privacy change or suspension, or the account suspended. Playback then stops within the TTL."""
    at_ms = int(clock.now().timestamp() * 1000)
    facts = await shared_facts(services.engine, stream_id)
    sharded = facts is not None and facts.like_shards > 0 and user.user_id != facts.owner_id
    if facts is not None and sharded:  # a hot stream's viewer: their shard keeps their presence
        shard = shard_of(user.user_id, facts.like_shards)
        batch_id, outcome = await services.batcher.shard_heartbeat(stream_id, shard, user.user_id, at_ms)
    else:  # the broadcaster's beats stay with the stream, which ends a broadcast gone silent
        batch_id, outcome = await services.batcher.heartbeat(stream_id, user.user_id, at_ms)
    if outcome is not None and outcome.status == "accepted":
        kind = "stream_shards.ShardHeartbeatsRecorded" if sharded else "streams.HeartbeatsRecorded"
        beats = event_payload(outcome, kind) or {}
        if user.user_id not in beats.get("beats", {}):
            raise Problem(409, "not-watching", "join the stream before sending heartbeats")
    refused = await playback_refusal(services, user, stream_id)

    def build(o: Outcome) -> dict[str, Any]:
        # a shard does not know the stream's counts: the read model's, a moment behind, stand in
        stats = facts.counts if facts is not None and sharded else o.stats
        body: dict[str, Any] = {"streamId": stream_id, **stats}
        if refused is None:
            body["playbackUrl"] = streams.playback_url(services.settings, stream_id, user.user_id)
        else:
            body.update(playbackUrl=None, playbackRefused=refused)
        return body

    return answer(outcome, batch_id, build)


async def playback_refusal(services: Services, user: Principal, stream_id: str) -> str | None:
    """Why `user` may get no new playback URL of the stream now, as a problem slug; None if they may.

    The stream's facts are shared between heartbeats for a second (`readable.shared_facts`)."""
    facts = await shared_facts(services.engine, stream_id)
    if facts is None:
        return "stream-not-found"
    if facts.status != "live":
        return "stream-not-live"
    viewer = await with_follows(services.engine, facts, viewer_of(user))
    access = stream_access(facts, viewer, "watch")
    if not access.allowed:  # a viewer who was watching knows a now-private stream exists
        return "private-stream" if access.status == 404 else access.slug
    if await account_suspended(services, user):
        return "account-suspended"
    return None


@router.get("/viewers")
async def list_viewers(
    stream_id: StreamPath,
    stream: StreamContent,
    services: ServicesDep,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    try:
        viewers, next_cursor = await run_in_threadpool(
            streams_views.list_viewers, services.engine, stream_id, cursor=cursor, limit=limit
        )
    except (ValueError, TypeError, IndexError) as exc:
        raise Problem(400, "invalid-cursor", "the cursor is not one this API returned") from exc
    return {"viewers": viewers, "nextCursor": next_cursor}
