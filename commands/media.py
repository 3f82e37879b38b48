"""Stream commands about video: key rotation, ingest from the media server, recordings.

Sent by the API's media-server hooks (actor `media`) and by the worker's timers (actor `system`),
except `RotateStreamKey`, which the broadcaster sends.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spaktok.commands.base import register_command
from spaktok.commands.streams import StreamCommand


@register_command
class RotateStreamKey(StreamCommand):
    """The owner's: bump the key generation; the API derives the new key, the log never holds it."""

    type: Literal["streams.RotateStreamKey"] = "streams.RotateStreamKey"


@register_command
class StartIngest(StreamCommand):
    """The media server asks whether a publish with a key of `generation` (MAC already checked) may go on."""

    type: Literal["streams.StartIngest"] = "streams.StartIngest"
    generation: int = Field(ge=1)


@register_command
class StopIngest(StreamCommand):
    """The media server says the publisher went away (on_publish_done)."""

    type: Literal["streams.StopIngest"] = "streams.StopIngest"


@register_command
class CheckIngest(StreamCommand):
    """Internal, from the worker's timer: end the stream if ingest has been gone for `grace_ms`.

    Decided with the command's `issued_at` as "now": a publish that came back in time wins.
    """

    type: Literal["streams.CheckIngest"] = "streams.CheckIngest"
    grace_ms: int = Field(ge=0)


@register_command
class CompleteRecording(StreamCommand):
    """The API processed a finished recording (remuxed, thumbnail grabbed): make it a replay."""

    type: Literal["streams.CompleteRecording"] = "streams.CompleteRecording"
    recording_id: str = Field(min_length=1, max_length=128)
    path: str = Field(min_length=1, max_length=512)
    thumbnail: str | None = Field(None, max_length=512)
    duration: float = Field(ge=0)
    size_bytes: int = Field(ge=0)


@register_command
class ExpireRecordings(StreamCommand):
    """Internal, from the worker's timer: delete recordings older than `retention_s` (7-30 days)."""

    type: Literal["streams.ExpireRecordings"] = "streams.ExpireRecordings"
    retention_s: int = Field(ge=7 * 86400, le=30 * 86400)


@register_command
class RecordIngestHealth(StreamCommand):
    """The stream's transcoder measured the ingest over the last `window_s` (infra/ingest_meter.py):
    the decider adds the warnings a client shows and logs it as `IngestHealthSampled`."""

    type: Literal["streams.RecordIngestHealth"] = "streams.RecordIngestHealth"
    window_s: float = Field(gt=0, le=300)
    bitrate_kbps: int = Field(ge=0, le=1_000_000)
    frame_rate: float | None = Field(None, ge=0, le=1000)
    width: int | None = Field(None, ge=1, le=16384)
    height: int | None = Field(None, ge=1, le=16384)
    keyframe_interval_s: float | None = Field(None, ge=0, le=3600)
    dropped_frames: int = Field(0, ge=0)
    speed: float | None = Field(None, ge=0, le=1000)
    renditions: list[str] = Field(default_factory=list, max_length=8)
    thumbnail: bool = False  # the transcoder has written the stream's live thumbnail
