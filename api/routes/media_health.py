"""Stream health (issue #18, spec §3.1 step 3, §10.1): the transcoder's samples in, the
broadcaster's view out.

`POST /v1/hooks/media/health` is a media-server callback like the nginx-rtmp hooks (form body, from
`SPAKTOK_MEDIA_HOOK_CLIENTS` only); each sample goes through the stream aggregate, which adds the
warnings (`commands.media_health`). `GET /v1/streams/{id}/health` is the broadcaster's (and an
admin's) latest sample with the warnings in words.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from spaktok import clock
from spaktok.api.deps import ServicesDep, StreamPath
from spaktok.api.problems import Problem
from spaktok.api.readable import HealthStream
from spaktok.api.routes.media import MEDIA_ACTOR, hook_form
from spaktok.commands.media import RecordIngestHealth
from spaktok.commands.media_health import WARNINGS
from spaktok.projections import media_views

router = APIRouter(tags=["media"])

# form field -> command field; absent or empty fields are "not measured"
_FIELDS = {
    "windowS": "window_s",
    "bitrateKbps": "bitrate_kbps",
    "frameRate": "frame_rate",
    "width": "width",
    "height": "height",
    "keyframeIntervalS": "keyframe_interval_s",
    "droppedFrames": "dropped_frames",
    "speed": "speed",
    "thumbnail": "thumbnail",
}


def health_command(form: dict[str, str]) -> RecordIngestHealth:
    values: dict[str, Any] = {
        field: form[name] for name, field in _FIELDS.items() if form.get(name, "") != ""
    }
    renditions = [r for r in form.get("renditions", "").split(",") if r]
    try:
        return RecordIngestHealth(
            command_id=str(uuid.uuid4()),
            issued_at=clock.now(),
            actor_id=MEDIA_ACTOR,
            stream_id=form.get("streamId", ""),
            renditions=renditions,
            **values,
        )
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise Problem(
            422, "invalid-health-sample", f"the health sample has invalid fields: {fields}"
        ) from exc


@router.post("/v1/hooks/media/health", status_code=204)
async def on_health_sample(request: Request, services: ServicesDep) -> Response:
    """One sample from a stream's transcoder; a sample for a stream that stopped is dropped."""
    command = health_command(await hook_form(request, services))
    outcome = await services.bus.execute(command)
    if outcome is not None and outcome.status == "rejected":
        raise Problem.from_rejection(outcome.reason, outcome.detail)
    return Response(status_code=204)


@router.get("/v1/streams/{stream_id}/health")
async def get_health(stream_id: StreamPath, stream: HealthStream, services: ServicesDep) -> dict[str, Any]:
    """The latest sample, its warnings in words, and whether it is stale (the transcoder stopped
    reporting: no ingest, or the media server is down)."""
    sample = await run_in_threadpool(media_views.health_of, services.engine, stream_id)
    if sample is None:
        detail = "no health sample yet: the stream's encoder has not published, or only just started"
        raise Problem(404, "health-not-found", detail)
    age = (clock.now() - sample["sampledAt"]).total_seconds()
    return {
        "streamId": stream_id,
        "ingestStatus": stream.doc["ingestStatus"],
        **sample,
        "warnings": [{"code": code, "message": WARNINGS.get(code, code)} for code in sample["warnings"]],
        "stale": age > 3 * max(sample["windowS"], services.settings.health_sample_s),
    }
