"""Stream lifecycle: start, read, discover, end (API.md "Streams")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic.alias_generators import to_camel

from spaktok.api import media_links
from spaktok.api.access import STAFF_ROLES
from spaktok.api.deps import CommandMeta, CurrentUser, IdempotencyKey, ServicesDep, StreamPath
from spaktok.api.problems import Problem
from spaktok.api.readable import ReadableStream, is_known_minor, youngest_age
from spaktok.api.responses import answer, event_payload
from spaktok.api.schemas import StartStreamBody, UpdateStreamBody
from spaktok.commands.broadcasters import StartStream
from spaktok.commands.streams import EndStream, UpdateStream
from spaktok.events.envelope import derive_id
from spaktok.infra.ladder import THUMBNAIL
from spaktok.projections import streams_views
from spaktok.settings import Settings

router = APIRouter(prefix="/v1/streams", tags=["streams"])


def stream_key(settings: Settings, stream_id: str, generation: int = 1) -> str:
    """The secret publish key: derived with an HMAC, so it is never written to the event log."""
    return media_links.stream_key(settings.stream_key_secret, stream_id, generation)


def playback_url(settings: Settings, stream_id: str, viewer_id: str) -> str:
    """A signed HLS URL for one viewer that expires after `SPAKTOK_PLAYBACK_URL_TTL_S` (nginx
    secure_link). Issue it only once the access policy allowed `viewer_id` to watch."""
    return media_links.playback_url(
        settings.hls_base_url,
        settings.media_link_secret,
        stream_id,
        settings.playback_url_ttl_s,
        viewer_id=viewer_id,
    )


@router.post("", status_code=201)
async def start_stream(
    body: StartStreamBody, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    settings = services.settings
    meta = CommandMeta.for_request(user, "start-stream", idempotency_key)
    stream_id = "st_" + derive_id(meta.command_id, "stream").replace("-", "")[:24]
    command = StartStream(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        user_id=user.user_id,
        stream_id=stream_id,
        username=user.name,
        user_profile_image=user.picture,
        is_premium=user.premium,
        ingest_url=settings.rtmp_ingest_url,
        playback_url=f"{settings.hls_base_url.rstrip('/')}/{stream_id}/index.m3u8",  # unsigned: the address
        **body.model_dump(exclude={"location"}),
        location=body.location.model_dump() if body.location else None,
        broadcaster_age=youngest_age(user.birth_year),
        streaming_min_age=settings.streaming_min_age,
        like_shards=settings.stream_like_shards,
    )
    outcome = await services.bus.execute(command)

    def build(_: Any) -> dict[str, Any]:
        return {
            "streamId": stream_id,
            "streamKey": stream_key(settings, stream_id),
            "ingestUrl": settings.rtmp_ingest_url,
            "playbackUrl": playback_url(settings, stream_id, user.user_id),  # the owner's own
            "status": "live",
        }

    return answer(outcome, meta.command_id, build, status=201)


@router.get("")
async def discover_streams(
    services: ServicesDep,
    user: CurrentUser,
    status: Annotated[str | None, Query(pattern="^(scheduled|live|ended|cancelled)$")] = "live",
    category: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    language: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    try:
        streams, next_cursor = await run_in_threadpool(
            streams_views.list_streams,
            services.engine,
            status=status,
            category=category,
            tag=tag,
            language=language,
            cursor=cursor,
            limit=limit,
            viewer_id=user.user_id,
            staff=bool(user.roles & STAFF_ROLES),
            minor=is_known_minor(user),
        )
    except (ValueError, TypeError) as exc:
        raise Problem(400, "invalid-cursor", "the cursor is not one this API returned") from exc
    shown = [_public(with_thumbnail(s, services.settings, user.user_id)) for s in streams]
    return {"streams": shown, "nextCursor": next_cursor}


@router.get("/{stream_id}")
async def get_stream(
    stream_id: StreamPath, stream: ReadableStream, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    """The document, for whoever the access policy lets see it (a hidden private stream is a 404)."""
    doc = with_thumbnail(stream.doc, services.settings, user.user_id)
    if doc["userId"] == user.user_id:
        doc["streamKey"] = stream_key(services.settings, stream_id, doc["keyGeneration"])
        doc["playbackUrl"] = playback_url(services.settings, stream_id, user.user_id)
        return doc
    return _public(doc)


@router.post("/{stream_id}/end")
async def end_stream(
    stream_id: StreamPath, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    meta = CommandMeta.for_request(user, f"end:{stream_id}", idempotency_key)
    command = EndStream(
        command_id=meta.command_id, issued_at=meta.issued_at, actor_id=user.user_id, stream_id=stream_id
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Any) -> dict[str, Any]:
        ended = event_payload(outcome, "streams.StreamEnded") or {}
        return {
            "streamId": stream_id,
            "status": "ended",
            "endedAt": ended.get("ended_at"),
            "duration": ended.get("duration"),
            "peakViewerCount": ended.get("peak_viewer_count"),
            "totalViews": ended.get("total_views"),
            "likes": ended.get("likes"),
            "comments": ended.get("comments"),
            "gifts": ended.get("gifts"),
            "giftRevenue": ended.get("gift_revenue"),
        }

    return answer(outcome, meta.command_id, build)


@router.patch("/{stream_id}")
async def update_stream(
    stream_id: StreamPath, body: UpdateStreamBody, user: CurrentUser, services: ServicesDep
) -> JSONResponse:
    """Owner only, while live. Answers with what changed (empty when nothing did)."""
    fields = body.model_dump(exclude_none=True)
    if not fields:
        raise Problem(422, "invalid-update", "send at least one field to change")
    meta = CommandMeta.for_request(user, f"update:{stream_id}")
    command = UpdateStream(
        command_id=meta.command_id,
        issued_at=meta.issued_at,
        actor_id=user.user_id,
        stream_id=stream_id,
        **fields,
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Any) -> dict[str, Any]:
        updated = event_payload(outcome, "streams.StreamUpdated") or {"changes": {}}
        return {"streamId": stream_id, "changes": {to_camel(k): v for k, v in updated["changes"].items()}}

    return answer(outcome, meta.command_id, build)


def with_thumbnail(doc: dict[str, Any], settings: Settings, viewer_id: str) -> dict[str, Any]:
    """While the stream is live and its transcoder has written a frame, `thumbnailUrl` is that
    frame, signed for this caller like the playlist (docs/media.md "Live thumbnails"); otherwise
    it stays what the broadcaster gave (or null). Call only with a document the caller may read."""
    if doc.pop("liveThumbnail", False) and doc.get("status") == "live":
        doc["thumbnailUrl"] = media_links.playback_url(
            settings.hls_base_url,
            settings.media_link_secret,
            doc["streamId"],
            settings.playback_url_ttl_s,
            viewer_id=viewer_id,
            file=THUMBNAIL,
        )
    return doc


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    doc.pop("streamKey", None)
    doc.pop("keyGeneration", None)
    doc.pop("bannedUsers", None)  # for the broadcaster and moderators only
    doc.pop("allowedUserIds", None)  # who may watch a private stream: the broadcaster's to know
    return doc
