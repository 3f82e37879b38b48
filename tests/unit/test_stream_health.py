"""Stream health (issue #18): the warnings of a sample, and the stream decider's rule for samples,
in given/when/then form. Each warning has a sample that raises it and one that does not."""

from __future__ import annotations

from typing import Any

import pytest
from gwt import at
from test_media_decider import STREAM, ended, ingest, meta, started, stopped

from spaktok.commands.media import RecordIngestHealth
from spaktok.commands.media_health import WARNINGS, min_kbps, warnings
from spaktok.events.media import IngestHealthSampled

HEALTHY = {
    "window_s": 5,
    "bitrate_kbps": 2500,
    "frame_rate": 30.0,
    "width": 1280,
    "height": 720,
    "keyframe_interval_s": 2.0,
    "dropped_frames": 0,
    "speed": 1.0,
}


def sample(seconds: float = 20, **changes: Any) -> RecordIngestHealth:
    return RecordIngestHealth(**meta("health", seconds), **{**HEALTHY, **changes})


def sampled(seconds: float = 20, found: list[str] | None = None, **changes: Any) -> IngestHealthSampled:
    return IngestHealthSampled(**{**HEALTHY, **changes}, warnings=found or [], sampled_at=at(seconds))


def test_a_healthy_encoder_raises_nothing() -> None:
    assert warnings(sample()) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"frame_rate": 0.0, "bitrate_kbps": 0}, ["ingest-stalled"]),
        ({"frame_rate": 0.0}, ["ingest-stalled"]),  # bytes without frames: still nothing to watch
        ({"bitrate_kbps": 0}, ["ingest-stalled"]),
        ({"bitrate_kbps": 1400}, ["bitrate-low"]),  # 720p needs 1,500
        ({"keyframe_interval_s": 4.5}, ["keyframe-interval-long"]),
        ({"dropped_frames": 3}, ["frames-dropped"]),
        ({"speed": 0.8}, ["transcoder-behind"]),
        ({"bitrate_kbps": 500, "dropped_frames": 1}, ["bitrate-low", "frames-dropped"]),
    ],
)
def test_each_rule_raises_its_warning(changes: dict[str, Any], expected: list[str]) -> None:
    assert warnings(sample(**changes)) == expected
    assert set(expected) <= set(WARNINGS)  # every code has words a client can show


def test_the_bitrate_floor_follows_the_height_and_unknowns_are_not_judged() -> None:
    assert (min_kbps(1080), min_kbps(719), min_kbps(240), min_kbps(120)) == (3000, 600, 150, 100)
    assert warnings(sample(bitrate_kbps=1400, height=480)) == []  # enough for 480p
    assert warnings(sample(height=None, keyframe_interval_s=None, speed=None)) == []
    assert warnings(sample(keyframe_interval_s=4.0)) == []  # at the limit is fine


def test_a_sample_of_a_live_ingest_is_logged_with_its_warnings() -> None:
    given = STREAM.given(started(), ingest(3))
    given.when(sample(20)).then(sampled(20))
    given.when(sample(21, bitrate_kbps=0, frame_rate=0.0)).then(
        sampled(21, ["ingest-stalled"], bitrate_kbps=0, frame_rate=0.0)
    )


def test_a_sample_after_the_publisher_left_or_the_stream_ended_is_dropped() -> None:
    STREAM.given(started()).when(sample(20)).then()  # never published
    STREAM.given(started(), ingest(3), stopped(10)).when(sample(20)).then()
    STREAM.given(started(), ingest(3), ended(15)).when(sample(20)).then()
    STREAM.given().when(sample(20)).then_rejected("stream-not-found")
