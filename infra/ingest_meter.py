"""Stream health figures from what the transcoder sees: pure parsing and arithmetic.

Three sources, each read where it is cheapest (docs/media.md "Stream health"):
- ffmpeg's `showinfo` on the decoded input: one line per frame with its timestamp, size and
  whether it is a keyframe, so the frame rate, resolution and keyframe interval are the
  broadcaster's own, not our encodes';
- ffmpeg's `-progress` output: `speed` (below 1 the transcoder falls behind: late frames) and the
  frames it dropped;
- nginx-rtmp's statistics XML: bytes received from the publisher (the ingest bitrate) and the
  frames nginx dropped for it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

_FRAME = re.compile(
    r"\] n:\s*\d+ pts:\s*-?\d+ pts_time:(?P<t>-?[\d.]+).*? s:(?P<w>\d+)x(?P<h>\d+) .*?iskey:(?P<key>[01])"
)


@dataclass
class IngestMeter:
    """Accumulates frames and progress between two samples; `sample` reads and starts a new window."""

    frames: int = 0
    width: int = 0
    height: int = 0
    last_key_pts: float | None = None
    key_intervals: list[float] = field(default_factory=list)
    speed: float | None = None
    dropped_by_transcoder: int = 0
    _dropped_at_last_sample: int = 0
    _bytes_at_last_sample: int | None = None
    _dropped_in_at_last_sample: int | None = None

    def feed_log_line(self, line: str) -> None:
        match = _FRAME.search(line)
        if match is None:
            return
        self.frames += 1
        self.width, self.height = int(match["w"]), int(match["h"])
        if match["key"] == "1":
            pts = float(match["t"])
            if self.last_key_pts is not None and pts > self.last_key_pts:
                self.key_intervals.append(pts - self.last_key_pts)
            self.last_key_pts = pts

    def feed_progress(self, line: str) -> None:
        key, _, value = line.strip().partition("=")
        if key == "speed" and value.endswith("x"):
            try:
                self.speed = float(value[:-1])
            except ValueError:
                self.speed = None
        elif key == "drop_frames" and value.isdigit():
            self.dropped_by_transcoder = int(value)

    def sample(self, window_s: float, ingest: IngestStat | None) -> dict[str, Any]:
        """The figures of the window that just ended (`window_s` long), then a new window."""
        bytes_in = ingest.bytes_in if ingest else None
        bitrate = None
        if bytes_in is not None and self._bytes_at_last_sample is not None and window_s > 0:
            bitrate = round(max(0, bytes_in - self._bytes_at_last_sample) * 8 / window_s / 1000)
        dropped_in = ingest.dropped if ingest else None
        dropped = self.dropped_by_transcoder - self._dropped_at_last_sample
        if dropped_in is not None and self._dropped_in_at_last_sample is not None:
            dropped += max(0, dropped_in - self._dropped_in_at_last_sample)
        figures = {
            "bitrateKbps": bitrate,
            "frameRate": round(self.frames / window_s, 2) if window_s > 0 else None,
            "width": self.width or None,
            "height": self.height or None,
            "keyframeIntervalS": round(max(self.key_intervals), 3) if self.key_intervals else None,
            "droppedFrames": max(0, dropped),
            "speed": self.speed,
        }
        self.frames, self.key_intervals = 0, []
        self._dropped_at_last_sample = self.dropped_by_transcoder
        self._bytes_at_last_sample, self._dropped_in_at_last_sample = bytes_in, dropped_in
        return figures


@dataclass(frozen=True)
class IngestStat:
    bytes_in: int
    dropped: int  # frames nginx dropped for the publisher


def ingest_stat(xml_text: str, app: str, stream: str) -> IngestStat | None:
    """The publisher of `stream` in `app` in nginx-rtmp's `rtmp_stat` XML, or None if absent."""
    try:
        root = ET.fromstring(xml_text)  # noqa: S314 - our own media server's statistics
    except ET.ParseError:
        return None
    for application in root.iter("application"):
        if application.findtext("name") != app:
            continue
        for node in application.iter("stream"):
            if node.findtext("name") != stream:
                continue
            dropped = 0
            for client in node.iter("client"):
                if client.find("publishing") is not None:
                    dropped = int(client.findtext("dropped") or 0)
            return IngestStat(bytes_in=int(node.findtext("bytes_in") or 0), dropped=dropped)
    return None
