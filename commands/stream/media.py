"""The media context's part of the stream: the stream key's generation, the ingest from the media
server and the recordings (docs/media.md), and how the media events change them.

Its rules (key rotation, publish authorisation, reconnect grace, recordings) are
`commands.media_decide`; `stream.decide` routes its commands there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spaktok.commands.stream.state import Media, copy_with, millis
from spaktok.events.base import Event
from spaktok.events.media import (
    IngestStarted,
    IngestStopped,
    RecordingDeleted,
    RecordingReady,
    StreamKeyRotated,
)


def _rotated(media: Media, event: StreamKeyRotated) -> Media:
    return copy_with(media, key_generation=event.generation)


def _ingest_started(media: Media, event: IngestStarted) -> Media:
    return copy_with(media, ingest="live", ingest_changed_ms=millis(event.started_at))


def _ingest_stopped(media: Media, event: IngestStopped) -> Media:
    return copy_with(media, ingest="lost", ingest_changed_ms=millis(event.stopped_at))


def _recording_ready(media: Media, event: RecordingReady) -> Media:
    entry = [millis(event.ready_at), event.path, event.thumbnail]
    return copy_with(media, recordings={**media.recordings, event.recording_id: entry})


def _recording_deleted(media: Media, event: RecordingDeleted) -> Media:
    kept = {rid: entry for rid, entry in media.recordings.items() if rid != event.recording_id}
    return copy_with(media, recordings=kept)


# recordings are few: replaced, not changed in place (`thaw` does not copy them)
FOLDS: dict[type[Event], Callable[[Media, Any], Media]] = {
    StreamKeyRotated: _rotated,
    IngestStarted: _ingest_started,
    IngestStopped: _ingest_stopped,
    RecordingReady: _recording_ready,
    RecordingDeleted: _recording_deleted,
}
