"""What happens to a stream's video: publish keys, ingest from the media server, recordings.

These events live on the stream aggregate (and its topic); the stream key itself never appears in
them, only its generation (docs/media.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from spaktok.events.base import register_event
from spaktok.events.streams import StreamEvent


@register_event
class StreamKeyRotated(StreamEvent):
    """The broadcaster asked for a new stream key: keys of older generations stop working."""

    type: Literal["streams.StreamKeyRotated"] = "streams.StreamKeyRotated"
    generation: int
    rotated_at: datetime


@register_event
class IngestStarted(StreamEvent):
    """The media server accepted a publish with the stream's current key: video is coming in.

    `resumed`: the encoder came back within the reconnect grace period after losing its connection.
    """

    type: Literal["streams.IngestStarted"] = "streams.IngestStarted"
    generation: int
    resumed: bool
    record: bool  # the media server should record this session (the stream asked for recording)
    started_at: datetime


@register_event
class IngestStopped(StreamEvent):
    """The publisher went away; the stream ends unless a publish comes back within the grace period."""

    type: Literal["streams.IngestStopped"] = "streams.IngestStopped"
    stopped_at: datetime


@register_event
class RecordingStarted(StreamEvent):
    type: Literal["streams.RecordingStarted"] = "streams.RecordingStarted"
    started_at: datetime


@register_event
class RecordingReady(StreamEvent):
    """A recorded session is playable: `path` and `thumbnail` are relative to the recordings root."""

    type: Literal["streams.RecordingReady"] = "streams.RecordingReady"
    recording_id: str
    path: str
    thumbnail: str | None = None
    duration: float  # seconds
    size_bytes: int
    ready_at: datetime


@register_event
class RecordingDeleted(StreamEvent):
    """A recording is gone (retention); the component that owns the files removes them."""

    type: Literal["streams.RecordingDeleted"] = "streams.RecordingDeleted"
    recording_id: str
    path: str
    thumbnail: str | None = None
    reason: Literal["retention"]
    deleted_at: datetime


@register_event
class IngestHealthSampled(StreamEvent):
    """What the broadcaster's encoder sent over the last `window_s`, and what is wrong with it.

    Figures are the source's (before our ladder); `warnings` are codes from
    `commands.media_health.WARNINGS`. Telemetry: it changes nothing the stream decides on.
    """

    type: Literal["streams.IngestHealthSampled"] = "streams.IngestHealthSampled"
    window_s: float
    bitrate_kbps: int
    frame_rate: float | None = None
    width: int | None = None
    height: int | None = None
    keyframe_interval_s: float | None = None
    dropped_frames: int = 0
    speed: float | None = None
    renditions: list[str] = []
    thumbnail: bool = False
    warnings: list[str] = []
    sampled_at: datetime
