"""The stream decider's media rules: key rotation, publish authorisation, reconnect grace, recordings.

Pure like the rest of the stream decider; `stream_decide.decide` hands these commands here.
"""

from __future__ import annotations

from datetime import timedelta

from spaktok.commands.base import Command, Rejection
from spaktok.commands.media import (
    CheckIngest,
    CompleteRecording,
    ExpireRecordings,
    RecordIngestHealth,
    RotateStreamKey,
    StartIngest,
    StopIngest,
)
from spaktok.commands.media_health import warnings
from spaktok.commands.stream_state import StreamState, millis
from spaktok.events.base import Event
from spaktok.events.media import (
    IngestHealthSampled,
    IngestStarted,
    IngestStopped,
    RecordingDeleted,
    RecordingReady,
    RecordingStarted,
    StreamKeyRotated,
)

MEDIA_COMMANDS = (
    RotateStreamKey,
    StartIngest,
    StopIngest,
    CheckIngest,
    CompleteRecording,
    ExpireRecordings,
    RecordIngestHealth,
)


def decide_media(command: Command, state: StreamState) -> list[Event]:
    match command:
        case RotateStreamKey():
            return _rotate(command, state)
        case StartIngest():
            return _start_ingest(command, state)
        case StopIngest():
            return _stop_ingest(command, state)
        case CheckIngest():
            return _check_ingest(command, state)
        case CompleteRecording():
            return _complete_recording(command, state)
        case ExpireRecordings():
            return _expire_recordings(command, state)
        case RecordIngestHealth():
            return _record_health(command, state)
    raise Rejection("unsupported-command", f"the stream aggregate does not handle {command.type}")


def _exists(state: StreamState) -> None:
    if state.status == "none":
        raise Rejection("stream-not-found", "no stream with this id")


def _rotate(command: RotateStreamKey, state: StreamState) -> list[Event]:
    _exists(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster can rotate the stream key")
    if state.status != "live":
        raise Rejection("stream-not-live", "the stream has ended; its key can no longer publish")
    return [StreamKeyRotated(generation=state.key_generation + 1, rotated_at=command.issued_at)]


def _start_ingest(command: StartIngest, state: StreamState) -> list[Event]:
    """A key works only for its stream, only in its current generation, only while the stream is live."""
    _exists(state)
    if state.status != "live":
        raise Rejection("stream-not-live", "the stream has ended; start a new one to go live")
    if command.generation != state.key_generation:
        raise Rejection("stream-key-revoked", "this stream key was rotated; use the current one")
    if state.ingest == "live":
        # the media server missed a publish-done (crash, restart): let the new publisher in
        return []
    events: list[Event] = [
        IngestStarted(
            generation=command.generation,
            resumed=state.ingest == "lost",
            record=state.is_recorded,
            started_at=command.issued_at,
        )
    ]
    if state.is_recorded:
        events.append(RecordingStarted(started_at=command.issued_at))
    return events


def _stop_ingest(command: StopIngest, state: StreamState) -> list[Event]:
    _exists(state)
    if state.status != "live" or state.ingest != "live":
        return []  # ended meanwhile, or a duplicate notification
    return [IngestStopped(stopped_at=command.issued_at)]


def _check_ingest(command: CheckIngest, state: StreamState) -> list[Event]:
    """Ends the stream once ingest has been gone for the whole grace period; a resumed publish wins."""
    from spaktok.commands.stream_decide import ending  # the stream decider imports this module

    if state.status != "live" or state.ingest != "lost":
        return []
    if millis(command.issued_at) - state.ingest_changed_ms < command.grace_ms:
        return []
    return ending(state, command.issued_at, "ingest_lost")


def _complete_recording(command: CompleteRecording, state: StreamState) -> list[Event]:
    _exists(state)
    if not state.is_recorded:
        raise Rejection("not-recorded", "this stream did not ask to be recorded")
    if command.recording_id in state.recordings:
        return []  # the media server told us twice
    return [
        RecordingReady(
            recording_id=command.recording_id,
            path=command.path,
            thumbnail=command.thumbnail,
            duration=command.duration,
            size_bytes=command.size_bytes,
            ready_at=command.issued_at,
        )
    ]


def _expire_recordings(command: ExpireRecordings, state: StreamState) -> list[Event]:
    cutoff = millis(command.issued_at - timedelta(seconds=command.retention_s))
    return [
        RecordingDeleted(
            recording_id=recording_id,
            path=path,
            thumbnail=thumbnail,
            reason="retention",
            deleted_at=command.issued_at,
        )
        for recording_id, (ready_ms, path, thumbnail) in sorted(state.recordings.items())
        if ready_ms <= cutoff
    ]


def _record_health(command: RecordIngestHealth, state: StreamState) -> list[Event]:
    """A sample counts only while the stream is live and ingesting: one that arrives after the
    publisher left or the stream ended describes nothing anyone can fix, so it is dropped."""
    _exists(state)
    if state.status != "live" or state.ingest != "live":
        return []
    figures = command.model_dump(
        include=set(IngestHealthSampled.model_fields) - {"type", "warnings", "sampled_at"}
    )
    return [IngestHealthSampled(**figures, warnings=warnings(command), sampled_at=command.issued_at)]
