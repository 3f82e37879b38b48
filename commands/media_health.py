"""Stream health warnings: what is wrong with a broadcaster's encoder, from one health sample.

Pure, so each rule is tested given/when/then. The thresholds follow the usual live-streaming
guidance (a keyframe every 2 s, at most 4; bitrates per height as in `infra.ladder.RUNGS`, here the
floor below which the picture visibly breaks up). docs/media.md "Stream health" lists them.
"""

from __future__ import annotations

from typing import Protocol

# height -> the lowest ingest bitrate (kbit/s) that still looks right at that height
MIN_KBPS = ((1080, 3000), (720, 1500), (480, 600), (360, 350), (240, 150), (0, 100))
MAX_KEYFRAME_INTERVAL_S = 4.0
MIN_SPEED = 0.9

WARNINGS = {
    "ingest-stalled": "No video is arriving from your encoder. Check its connection, and that it is running.",
    "bitrate-low": "Your bitrate is too low for your resolution. Raise it, or lower the resolution.",
    "keyframe-interval-long": "Your keyframe interval is too long. Set it to 2 seconds in your encoder.",
    "frames-dropped": "Frames are being dropped. Your connection or your encoder cannot keep up.",
    "transcoder-behind": "The platform cannot keep up with your stream. Lower your resolution or frame rate.",
}


class Sample(Protocol):
    bitrate_kbps: int
    frame_rate: float | None
    height: int | None
    keyframe_interval_s: float | None
    dropped_frames: int
    speed: float | None


def min_kbps(height: int) -> int:
    return next(kbps for at_least, kbps in MIN_KBPS if height >= at_least)


def warnings(sample: Sample) -> list[str]:
    """The warning codes of one sample, in the order a client should show them."""
    if not sample.frame_rate or sample.bitrate_kbps == 0:
        return ["ingest-stalled"]  # nothing else can be judged without frames
    found = []
    if sample.height and sample.bitrate_kbps < min_kbps(sample.height):
        found.append("bitrate-low")
    if sample.keyframe_interval_s is not None and sample.keyframe_interval_s > MAX_KEYFRAME_INTERVAL_S:
        found.append("keyframe-interval-long")
    if sample.dropped_frames > 0:
        found.append("frames-dropped")
    if sample.speed is not None and sample.speed < MIN_SPEED:
        found.append("transcoder-behind")
    return found
