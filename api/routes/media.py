"""Media: nginx-rtmp callbacks (API.md "Media server callbacks"), stream key rotation, replays.

The hooks are called by nginx-rtmp with form fields; `name` is the stream key. They answer only
the clients in `SPAKTOK_MEDIA_HOOK_CLIENTS` and never log or echo a key (docs/media.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from spaktok import clock
from spaktok.api import media_links, recordings
from spaktok.api.deps import CommandMeta, CurrentUser, IdempotencyKey, Services, ServicesDep, StreamPath
from spaktok.api.problems import Problem
from spaktok.api.readable import WatchableStream
from spaktok.api.responses import answer, event_payload
from spaktok.commands.media import CompleteRecording, RotateStreamKey, StartIngest, StopIngest
from spaktok.commands.outcome import Outcome
from spaktok.events.envelope import derive_id
from spaktok.infra.nginx import MediaLayout
from spaktok.projections import media_views, streams_views
from spaktok.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(tags=["media"])

MEDIA_ACTOR = "media"  # the actor of commands the media server causes
MAX_HOOK_BODY = 8192
RECORDER = "replay"  # the nginx-rtmp recorder the API starts for streams that asked to be recorded
_background: set[asyncio.Task[None]] = set()  # keeps the recorder-start tasks alive


def rtmp_app(settings: Settings) -> str:
    return urlsplit(settings.rtmp_ingest_url).path.strip("/") or "live"


async def hook_form(request: Request, services: Services) -> dict[str, str]:
    client = request.client.host if request.client else ""
    if client not in services.settings.media_hook_clients:
        raise Problem(403, "hook-forbidden", "media-server callbacks are accepted from the media server only")
    body = await request.body()
    if len(body) > MAX_HOOK_BODY:
        raise Problem(413, "hook-too-large", f"a media-server callback is at most {MAX_HOOK_BODY} bytes")
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=50))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "invalid-hook", "expected an application/x-www-form-urlencoded body") from exc


def _claim(services: Services, form: dict[str, str]) -> media_links.KeyClaim:
    if form.get("app", rtmp_app(services.settings)) != rtmp_app(services.settings):
        raise Problem(403, "invalid-stream-key", "publish to the ingest application with your stream key")
    claim = media_links.verify_stream_key(services.settings.stream_key_secret, form.get("name", ""))
    if claim is None:
        raise Problem(403, "invalid-stream-key", "this is not a valid stream key")
    return claim


def _decided(outcome: Outcome | None) -> Outcome:
    if outcome is None:
        raise Problem(503, "ingest-undecided", "the stream did not answer in time; the encoder should retry")
    if outcome.status == "rejected":
        # nginx only distinguishes allowed (2xx/3xx) from refused: every refusal of a publish is a 403
        raise Problem(403, outcome.reason or "rejected", outcome.detail or "the publish was refused")
    return outcome


@router.post("/v1/hooks/rtmp/publish")
async def on_publish(request: Request, services: ServicesDep) -> Response:
    """2xx/3xx allows the publish, 403 denies it. The 302's Location renames the stream to its id."""
    claim = _claim(services, await hook_form(request, services))
    command = StartIngest(
        command_id=str(uuid.uuid4()),
        issued_at=clock.now(),
        actor_id=MEDIA_ACTOR,
        stream_id=claim.stream_id,
        generation=claim.generation,
    )
    outcome = _decided(await services.bus.execute(command))
    await run_in_threadpool(_write_plan, services, claim.stream_id)
    started = event_payload(outcome, "streams.IngestStarted")
    if started is not None and started["record"] and services.settings.media_control_url:
        task = asyncio.create_task(_start_recorder(services.settings, claim.stream_id))
        _background.add(task)
        task.add_done_callback(_background.discard)
    return Response(status_code=302, headers={"Location": claim.stream_id})


def _write_plan(services: Services, stream_id: str) -> None:
    """What the stream's transcoder needs from the stream (its `quality`: the top rung), left where
    it looks before it plans the ladder: nginx starts it only after this answer."""
    doc = streams_views.get_stream(services.engine, stream_id) or {}
    plans = MediaLayout(services.settings.media_root).plans
    plans.mkdir(parents=True, exist_ok=True)
    temporary = plans / f".{stream_id}.json.tmp"
    temporary.write_text(json.dumps({"quality": doc.get("quality") or "auto"}))
    os.replace(temporary, plans / f"{stream_id}.json")


async def _start_recorder(settings: Settings, stream_id: str, attempts: int = 40) -> None:
    """nginx starts publishing only after our answer: ask its control endpoint until it records."""
    url = f"{settings.media_control_url}/record/start"
    params = {"app": rtmp_app(settings), "name": stream_id, "rec": RECORDER}
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(attempts):
            await asyncio.sleep(0.25)
            try:
                response = await client.get(url, params=params)
            except httpx.HTTPError:
                continue
            if response.status_code == 200 and response.text.strip():
                return
    log.warning("nginx-rtmp did not start recording stream %s", stream_id)


@router.post("/v1/hooks/rtmp/publish-done")
async def on_publish_done(request: Request, services: ServicesDep) -> Response:
    """The publisher left: the reconnect grace period starts (the worker ends the stream after it)."""
    claim = _claim(services, await hook_form(request, services))
    command = StopIngest(
        command_id=str(uuid.uuid4()), issued_at=clock.now(), actor_id=MEDIA_ACTOR, stream_id=claim.stream_id
    )
    outcome = await services.bus.execute(command)
    if outcome is not None and outcome.status == "rejected":
        raise Problem.from_rejection(outcome.reason, outcome.detail)
    return Response(status_code=204)


@router.post("/v1/hooks/rtmp/record-done")
async def on_record_done(request: Request, services: ServicesDep) -> JSONResponse:
    """A recorded session is complete: MP4 + thumbnail, then `RecordingReady` through the stream."""
    form = await hook_form(request, services)
    claim = _claim(services, form)
    settings = services.settings
    layout = MediaLayout(settings.media_root)
    try:
        source = recordings.incoming_file(layout, claim.stream_id, form.get("path", ""))
    except recordings.RecordingError as exc:
        raise Problem(422, "invalid-recording", str(exc)) from exc
    try:
        done = await run_in_threadpool(
            recordings.process, layout, claim.stream_id, source, settings.ffmpeg, settings.ffprobe
        )
    except recordings.RecordingError as exc:
        log.warning("recording %s of stream %s could not be processed: %s", source.name, claim.stream_id, exc)
        raise Problem(422, "recording-unreadable", str(exc)) from exc
    command = CompleteRecording(
        command_id=derive_id("recording", claim.stream_id, done.recording_id),
        issued_at=clock.now(),
        actor_id=MEDIA_ACTOR,
        stream_id=claim.stream_id,
        recording_id=done.recording_id,
        path=done.path,
        thumbnail=done.thumbnail,
        duration=done.duration,
        size_bytes=done.size_bytes,
    )
    outcome = await services.bus.execute(command)
    if outcome is not None and outcome.status == "rejected":
        await run_in_threadpool(recordings.remove, layout, done.path, done.thumbnail)
        raise Problem.from_rejection(outcome.reason, outcome.detail)
    return answer(outcome, command.command_id, lambda o: {"recordingId": done.recording_id})


@router.post("/v1/streams/{stream_id}/stream-key")
async def rotate_stream_key(
    stream_id: StreamPath, user: CurrentUser, services: ServicesDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """The owner gets a new key; the old one stops working for new publishes at once."""
    meta = CommandMeta.for_request(user, f"rotate-key:{stream_id}", idempotency_key)
    command = RotateStreamKey(
        command_id=meta.command_id, issued_at=meta.issued_at, actor_id=user.user_id, stream_id=stream_id
    )
    outcome = await services.bus.execute(command)

    def build(outcome: Outcome) -> dict[str, Any]:
        rotated = event_payload(outcome, "streams.StreamKeyRotated") or {}
        generation = int(rotated["generation"])
        key = media_links.stream_key(services.settings.stream_key_secret, stream_id, generation)
        return {"streamId": stream_id, "streamKey": key, "ingestUrl": services.settings.rtmp_ingest_url}

    return answer(outcome, meta.command_id, build)


@router.get("/v1/streams/{stream_id}/replay")
async def get_replay(stream_id: StreamPath, stream: WatchableStream, services: ServicesDep) -> dict[str, Any]:
    """getStreamReplay (spec §3.6): signed, expiring URLs, for users the access policy lets watch
    (`watch`: the live rules, a suspended stream's replay withheld, age-restricted needs a known adult)."""
    parts = await run_in_threadpool(media_views.recordings_of, services.engine, stream_id)
    if not stream.doc["isRecorded"] or not parts:
        detail = "this stream has no replay (not recorded, not ready yet, or expired)"
        raise Problem(404, "replay-not-found", detail)
    settings = services.settings

    def sign(path: str | None) -> str | None:
        if path is None:
            return None
        return media_links.recording_url(
            settings.recordings_base_url, settings.media_link_secret, path, settings.replay_url_ttl_s
        )

    signed = [
        {
            "recordingId": p["recording_id"],
            "url": sign(p["path"]),
            "thumbnailUrl": sign(p["thumbnail"]),
            "duration": p["duration"],
            "recordedAt": p["ready_at"],
        }
        for p in parts
    ]
    return {
        "streamId": stream_id,
        "replayUrl": signed[0]["url"],  # the first part; a stream with reconnects has several
        "thumbnailUrl": signed[0]["thumbnailUrl"],
        "duration": round(sum(p["duration"] for p in parts), 3),
        "expiresIn": settings.replay_url_ttl_s,
        "parts": signed,
    }
