"""The stream's media rules in given/when/then form (issue #7): keys, ingest, grace, recordings."""

from __future__ import annotations

from typing import Any

from gwt import Aggregate, at
from test_stream_decider import HOST, STREAM_ID, ended, started

from spaktok.commands.media import (
    CheckIngest,
    CompleteRecording,
    ExpireRecordings,
    RotateStreamKey,
    StartIngest,
    StopIngest,
)
from spaktok.commands.stream_decide import decide
from spaktok.commands.stream_state import StreamState, evolve, thaw
from spaktok.commands.streams import SweepViewers
from spaktok.events.media import (
    IngestStarted,
    IngestStopped,
    RecordingDeleted,
    RecordingReady,
    RecordingStarted,
    StreamKeyRotated,
)
from spaktok.events.streams import StreamEnded

STREAM = Aggregate(StreamState, decide, evolve, thaw)
MEDIA = "media"
DAY = 86400


def meta(kind: str, seconds: float, actor: str = MEDIA) -> dict[str, Any]:
    return {
        "command_id": f"{kind}-{seconds}",
        "issued_at": at(seconds),
        "actor_id": actor,
        "stream_id": STREAM_ID,
    }


def publish(seconds: float, generation: int = 1) -> StartIngest:
    return StartIngest(**meta("publish", seconds), generation=generation)


def publish_done(seconds: float) -> StopIngest:
    return StopIngest(**meta("publish-done", seconds))


def check(seconds: float, grace_s: float = 30) -> CheckIngest:
    return CheckIngest(**meta("check", seconds, "system"), grace_ms=int(grace_s * 1000))


def ingest(seconds: float, resumed: bool = False, record: bool = True, generation: int = 1) -> IngestStarted:
    return IngestStarted(generation=generation, resumed=resumed, record=record, started_at=at(seconds))


def stopped(seconds: float) -> IngestStopped:
    return IngestStopped(stopped_at=at(seconds))


def ready(recording_id: str, seconds: float) -> RecordingReady:
    return RecordingReady(
        recording_id=recording_id,
        path=f"{STREAM_ID}/{recording_id}.mp4",
        thumbnail=f"{STREAM_ID}/{recording_id}.jpg",
        duration=12.5,
        size_bytes=1000,
        ready_at=at(seconds),
    )


# --- keys -------------------------------------------------------------------------------------


def test_the_owner_rotates_the_key_to_the_next_generation() -> None:
    rotate = RotateStreamKey(**meta("rotate", 5, HOST))
    STREAM.given(started()).when(rotate).then(StreamKeyRotated(generation=2, rotated_at=at(5)))
    STREAM.given(started(), StreamKeyRotated(generation=2, rotated_at=at(5))).when(rotate).then(
        StreamKeyRotated(generation=3, rotated_at=at(5))
    )


def test_only_the_owner_rotates_and_only_while_live() -> None:
    STREAM.given(started()).when(RotateStreamKey(**meta("rotate", 5, "bob"))).then_rejected(
        "not-stream-owner"
    )
    STREAM.given(started(), ended(4)).when(RotateStreamKey(**meta("rotate", 5, HOST))).then_rejected(
        "stream-not-live"
    )
    STREAM.given().when(RotateStreamKey(**meta("rotate", 5, HOST))).then_rejected("stream-not-found")


# --- publish authorisation --------------------------------------------------------------------


def test_a_publish_with_the_current_key_starts_ingest_and_recording() -> None:
    STREAM.given(started()).when(publish(3)).then(ingest(3), RecordingStarted(started_at=at(3)))


def test_a_stream_that_is_not_recorded_only_starts_ingest() -> None:
    STREAM.given(started(is_recorded=False)).when(publish(3)).then(ingest(3, record=False))


def test_a_rotated_key_is_refused() -> None:
    rotated = StreamKeyRotated(generation=2, rotated_at=at(2))
    STREAM.given(started(), rotated).when(publish(3, generation=1)).then_rejected("stream-key-revoked")
    STREAM.given(started(), rotated).when(publish(3, generation=2)).then(
        ingest(3, generation=2), RecordingStarted(started_at=at(3))
    )


def test_a_key_works_only_while_its_stream_may_go_live() -> None:
    STREAM.given(started(), ended(2)).when(publish(3)).then_rejected("stream-not-live")
    STREAM.given().when(publish(3)).then_rejected("stream-not-found")


def test_a_second_publish_while_ingesting_is_let_in_without_a_new_fact() -> None:
    STREAM.given(started(), ingest(3)).when(publish(4)).then()


# --- reconnect grace ----------------------------------------------------------------------------


def test_publish_done_starts_the_grace_period() -> None:
    STREAM.given(started(), ingest(3)).when(publish_done(10)).then(stopped(10))
    STREAM.given(started(), ingest(3), stopped(10)).when(publish_done(11)).then()  # told twice
    STREAM.given(started()).when(publish_done(11)).then()  # never published


def test_the_stream_ends_once_the_grace_period_has_passed() -> None:
    given = (started(), ingest(3), stopped(10))
    STREAM.given(*given).when(check(39.9)).then()  # 29.9 s: still within the grace
    events = STREAM.given(*given).when(check(40)).events()
    assert isinstance(events[-1], StreamEnded) and events[-1].reason == "ingest_lost"
    assert events[-1].ended_at == at(40) and events[-1].duration == 40


def test_a_publish_within_the_grace_period_keeps_the_stream_live() -> None:
    given = (started(), ingest(3), stopped(10))
    STREAM.given(*given).when(publish(20)).then(ingest(20, resumed=True), RecordingStarted(started_at=at(20)))
    STREAM.given(*given, ingest(20, resumed=True)).when(check(60)).then()


def test_live_ingest_counts_as_the_broadcasters_sign_of_life() -> None:
    sweep = SweepViewers(**meta("sweep", 1000, "system"), silent_ms=120_000, broadcaster_grace_ms=300_000)
    STREAM.given(started(), ingest(3)).when(sweep).then()
    events = STREAM.given(started(), ingest(3), stopped(10)).when(sweep).events()
    assert isinstance(events[-1], StreamEnded) and events[-1].reason == "broadcaster_lost"


# --- recordings -----------------------------------------------------------------------------------


def complete(recording_id: str, seconds: float) -> CompleteRecording:
    return CompleteRecording(
        **meta(f"record-{recording_id}", seconds),
        recording_id=recording_id,
        path=f"{STREAM_ID}/{recording_id}.mp4",
        thumbnail=f"{STREAM_ID}/{recording_id}.jpg",
        duration=12.5,
        size_bytes=1000,
    )


def test_a_finished_recording_becomes_ready_once() -> None:
    STREAM.given(started(), ingest(3)).when(complete("r1", 20)).then(ready("r1", 20))
    STREAM.given(started(), ingest(3), ready("r1", 20)).when(complete("r1", 21)).then()


def test_a_recording_of_a_stream_that_did_not_ask_is_refused() -> None:
    STREAM.given(started(is_recorded=False)).when(complete("r1", 20)).then_rejected("not-recorded")


def test_recordings_past_retention_are_deleted() -> None:
    given = (started(), ready("r1", 100), ready("r2", 5 * DAY), ended(6 * DAY))
    expire = ExpireRecordings(**meta("expire", 7 * DAY + 100, "system"), retention_s=7 * DAY)
    STREAM.given(*given).when(expire).then(
        RecordingDeleted(
            recording_id="r1",
            path=f"{STREAM_ID}/r1.mp4",
            thumbnail=f"{STREAM_ID}/r1.jpg",
            reason="retention",
            deleted_at=at(7 * DAY + 100),
        )
    )
    state = STREAM.given(*given).when(expire).then_state()
    assert list(state.recordings) == ["r2"]


def test_media_state_survives_storage() -> None:
    state = STREAM.given(
        started(), StreamKeyRotated(generation=2, rotated_at=at(1)), ingest(3), ready("r1", 9)
    ).state
    restored = StreamState.from_dict(state.to_dict())
    assert restored == state and restored.key_generation == 2 and restored.ingest == "live"
