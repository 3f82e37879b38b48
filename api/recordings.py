"""Finished recordings become replays: remux nginx's FLV to MP4, grab a thumbnail, measure it.

The API owns the processed files (`<media>/recordings/{streamId}/…`): it writes them here when
nginx reports a finished recording, and removes them when the log says a recording was deleted
(retention). nginx only writes `<media>/incoming/` and serves `<media>/recordings/` signed.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaktok.infra.nginx import MediaLayout

log = logging.getLogger(__name__)
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

FFMPEG_TIMEOUT_S = 600


class RecordingError(Exception):
    """The file is not one we can turn into a replay; the message says why."""


@dataclass(frozen=True)
class ProcessedRecording:
    recording_id: str
    path: str  # relative to the recordings root: {streamId}/{recordingId}.mp4
    thumbnail: str | None
    duration: float
    size_bytes: int


def incoming_file(layout: MediaLayout, stream_id: str, reported: str) -> Path:
    """The raw recording nginx reported, if it really is this stream's file in the incoming folder."""
    path = Path(reported)
    if not path.is_absolute():
        raise RecordingError("the recording path must be absolute")
    try:
        resolved = path.resolve()
    except (OSError, ValueError) as exc:  # e.g. an embedded NUL byte
        raise RecordingError("the recording path is not a usable file name") from exc
    if resolved.parent != layout.incoming.resolve():
        raise RecordingError("the recording is not in the media server's recording folder")
    if not (resolved.name.startswith(f"{stream_id}-") and resolved.suffix == ".flv"):
        raise RecordingError("the recording file is not named after this stream")
    if not resolved.is_file():
        raise RecordingError("the recording file does not exist (processed already?)")
    return resolved


def process(
    layout: MediaLayout, stream_id: str, source: Path, ffmpeg: str, ffprobe: str
) -> ProcessedRecording:
    """MP4 (faststart, streams copied, no re-encode) and a JPEG thumbnail next to it; the FLV goes."""
    recording_id = source.stem
    target_dir = layout.recordings / stream_id
    target_dir.mkdir(parents=True, exist_ok=True)
    mp4 = target_dir / f"{recording_id}.mp4"
    _run([ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-i", str(source), "-c", "copy",
          "-movflags", "+faststart", str(mp4)])  # fmt: skip
    duration = _duration(ffprobe, mp4)
    thumb: Path | None = target_dir / f"{recording_id}.jpg"
    try:
        _run([ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-ss", f"{min(1.0, duration / 2):.2f}",
              "-i", str(mp4), "-frames:v", "1", "-vf", "scale=320:-2", str(thumb)])  # fmt: skip
    except RecordingError as exc:  # audio-only recordings have no picture: a replay without thumbnail
        log.warning("no thumbnail for %s: %s", recording_id, exc)
        thumb = None
    source.unlink(missing_ok=True)
    return ProcessedRecording(
        recording_id=recording_id,
        path=f"{stream_id}/{mp4.name}",
        thumbnail=f"{stream_id}/{thumb.name}" if thumb is not None else None,
        duration=round(duration, 3),
        size_bytes=mp4.stat().st_size,
    )


def remove(layout: MediaLayout, *relative: str | None) -> int:
    """Delete processed files named relative to the recordings root; paths outside it are ignored."""
    root = layout.recordings.resolve()
    removed = 0
    for rel in relative:
        if not rel:
            continue
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or path == root:
            log.warning("refusing to delete %s: outside the recordings folder", rel)
            continue
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


def remove_live_media(layout: MediaLayout, stream_id: str) -> int:
    """The stream's HLS directory and transcoder plan; how many files went."""
    if not _SAFE_ID.fullmatch(stream_id):
        return 0
    directory = layout.hls / stream_id
    files = [p for p in directory.iterdir() if p.is_file()] if directory.is_dir() else []
    shutil.rmtree(directory, ignore_errors=True)
    plan = layout.plans / f"{stream_id}.json"
    gone = len(files) + plan.exists()
    plan.unlink(missing_ok=True)
    return gone


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RecordingError(f"{Path(argv[0]).name} failed: {exc}") from exc
    if done.returncode != 0:
        raise RecordingError(f"{Path(argv[0]).name} failed: {done.stderr.decode(errors='replace')[-300:]}")


def _duration(ffprobe: str, path: Path) -> float:
    argv = [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1", str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=60, check=True)
        return float(done.stdout.decode().strip())
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise RecordingError(f"could not read the recording's duration: {exc}") from exc


class RecordingJanitor:
    """Removes the files of recordings the log says were deleted (`streams.RecordingDeleted`), and a
    stream's live media (renditions, live thumbnail, the transcoder's plan) once it ended
    (`streams.StreamEnded`): the transcoder stops with the publisher, but a publisher may come back
    within the reconnect grace, so only the end of the stream removes them.

    A consumer group over the stream events, committed after each batch: a deletion missed while
    the API was down is done when it comes back, and doing one twice is harmless.
    """

    GROUP = "spaktok-recording-janitor"

    def __init__(self, settings: Any, layout: MediaLayout) -> None:
        self.settings = settings
        self.layout = layout
        self.removed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recording-janitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from confluent_kafka import Consumer

        from spaktok.events.envelope import TYPE_HEADER, decode_envelope
        from spaktok.infra import topics

        wanted = (b"streams.RecordingDeleted", b"streams.StreamEnded")
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.broker,
                "group.id": self.GROUP,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self.settings.kafka_session_timeout_ms,
                "heartbeat.interval.ms": self.settings.kafka_heartbeat_interval_ms,
            }
        )
        try:
            consumer.subscribe([topics.EVENTS_STREAMS.name])
            while not self._stop.is_set():
                batch = consumer.consume(500, timeout=0.5)
                for message in batch:
                    kind = dict(message.headers() or []).get(TYPE_HEADER)
                    if message.error() is not None or kind not in wanted:
                        continue
                    try:
                        envelope = decode_envelope(message.value() or b"")
                        if kind == wanted[1]:
                            self.removed += remove_live_media(self.layout, envelope.aggregate_id)
                            continue
                        payload = envelope.payload
                        self.removed += remove(self.layout, payload.get("path"), payload.get("thumbnail"))
                    except Exception:  # noqa: BLE001 - poison (the projectors park it) must not stop us
                        log.warning("the recording janitor skipped an undecodable %s", kind)
                if batch:
                    consumer.commit(asynchronous=False)
        except Exception:  # noqa: BLE001 - logged; the API keeps serving
            log.exception("the recording janitor stopped")
        finally:
            consumer.close()
