"""The transcoder nginx-rtmp starts for each published stream (`exec_push`, docs/media.md).

    python -m spaktok.infra.transcoder --stream ST --input rtmp://.../hls/ST --out DIR ...

It probes the source, plans the ladder (`ladder.plan`), runs one ffmpeg that writes every rendition
as HLS and a thumbnail, writes the master playlist once every variant has a segment (and again when
a variant's peak bitrate grows), and every `--sample-s` posts the stream's health figures to the
API's media hook. nginx stops it with SIGTERM when the publisher leaves; it stops ffmpeg and exits.

nginx starts it with an empty environment, so everything it needs is on its command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from spaktok.infra import ladder
from spaktok.infra.ingest_meter import IngestMeter, ingest_stat

log = logging.getLogger("spaktok.transcoder")
_SEGMENT = re.compile(r"#EXTINF:(?P<d>[\d.]+),\s*\n(?P<file>[^\s#]+)")


def probe(ffprobe: str, url: str, timeout_s: float = 15) -> dict[str, Any]:
    """The first video stream's size and profile, and whether there is audio."""
    argv = [ffprobe, "-v", "error", *ladder.INPUT_ANALYSIS]
    argv += ["-show_entries", "stream=codec_type,width,height,profile,level"]
    argv += ["-of", "json", url]
    done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    streams = json.loads(done.stdout or b"{}").get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise RuntimeError(f"no video stream in {url}: {done.stderr.decode(errors='replace')[-300:]}")
    return {**video, "has_audio": any(s.get("codec_type") == "audio" for s in streams)}


def variant_peak(playlist: Path) -> tuple[int, str | None]:
    """The peak bitrate (bits/s) over the segments a variant playlist lists, and its first segment."""
    try:
        text = playlist.read_text()
    except OSError:
        return 0, None
    peak, first = 0, None
    for match in _SEGMENT.finditer(text):
        segment = playlist.parent / match["file"]
        duration = float(match["d"])
        first = first or str(segment)
        try:
            if duration > 0:
                peak = max(peak, int(segment.stat().st_size * 8 / duration))
        except OSError:
            continue
    return peak, first


class MasterWriter:
    """Writes `index.m3u8` when every rung has a segment; rewrites it when a peak grows by 10 %."""

    def __init__(self, directory: Path, rungs: tuple[ladder.Rung, ...], ffprobe: str) -> None:
        self.directory, self.rungs, self.ffprobe = directory, rungs, ffprobe
        self.written: dict[str, ladder.Variant] = {}

    def _describe(self, rung: ladder.Rung, segment: str, peak: int) -> ladder.Variant:
        info = probe(self.ffprobe, segment, timeout_s=10)
        codecs = ladder.codecs(
            str(info.get("profile", "High")), int(info.get("level", 31)), info["has_audio"]
        )
        return ladder.Variant(rung.name, int(info["width"]), int(info["height"]), peak, codecs)

    def refresh(self) -> bool:
        variants = []
        for rung in self.rungs:
            peak, first = variant_peak(self.directory / f"{rung.name}.m3u8")
            if first is None:
                return False
            known = self.written.get(rung.name) or self._describe(rung, first, peak)
            variants.append(replace(known, peak_bps=max(peak, known.peak_bps)))
        written = self.written
        if written and all(v.peak_bps <= written[v.rung].peak_bps * 1.1 for v in variants):
            return False
        self.written = {v.rung: v for v in variants}
        temporary = self.directory / f".{ladder.MASTER}.tmp"
        temporary.write_text(ladder.master_playlist(variants))
        os.replace(temporary, self.directory / ladder.MASTER)
        return True


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spaktok.infra.transcoder")
    parser.add_argument("--stream", required=True)
    parser.add_argument("--input", required=True, help="the published stream, e.g. rtmp://127.0.0.1/hls/ST")
    parser.add_argument("--out", required=True, type=Path, help="the HLS root; the stream gets DIR/ST/")
    parser.add_argument("--plans", type=Path, help="where the API leaves {stream}.json with the quality")
    parser.add_argument("--ladder", default=ladder.DEV_LADDER)
    parser.add_argument("--hls-time", type=float, default=2)
    parser.add_argument("--list-size", type=int, default=5)
    parser.add_argument("--thumbnail-every", type=float, default=10)
    parser.add_argument("--sample-s", type=float, default=5)
    parser.add_argument("--health-url", help="the API's media health hook")
    parser.add_argument("--stat-url", help="nginx-rtmp's rtmp_stat page")
    parser.add_argument("--ingest-app", default="live")
    parser.add_argument("--ffmpeg", default="ffmpeg")
    parser.add_argument("--ffprobe", default="ffprobe")
    parser.add_argument("--log", type=Path, help="append the log here (nginx discards the output)")
    return parser.parse_args(argv)


def quality_of(plans: Path | None, stream: str) -> str:
    if plans is None:
        return "auto"
    try:
        return str(json.loads((plans / f"{stream}.json").read_text()).get("quality", "auto"))
    except (OSError, ValueError):
        return "auto"


def _pump(stream: Any, feed: Any) -> None:
    for raw in iter(stream.readline, b""):
        feed(raw.decode(errors="replace"))


def _report(
    args: argparse.Namespace, meter: IngestMeter, rungs: tuple[ladder.Rung, ...], client: httpx.Client
) -> None:
    """One health sample: nginx's byte counter and the meter's window, posted to the API as a
    form, like nginx-rtmp's own callbacks (an unmeasured figure is sent empty)."""
    stat = None
    if args.stat_url:
        try:
            stat = ingest_stat(client.get(args.stat_url).text, args.ingest_app, args.stream)
        except httpx.HTTPError:
            stat = None
    figures = meter.sample(args.sample_s, stat)
    if not args.health_url or figures["bitrateKbps"] is None:
        return  # the first window has no byte count to compare with
    form = {key: "" if value is None else str(value) for key, value in figures.items()}
    form |= {
        "streamId": args.stream,
        "windowS": f"{args.sample_s:g}",
        "renditions": ",".join(r.name for r in rungs),
        "thumbnail": str((args.out / args.stream / ladder.THUMBNAIL).exists()).lower(),
    }
    try:
        client.post(args.health_url, data=form).raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("the health sample of %s was not taken: %s", args.stream, exc)


def run(args: argparse.Namespace) -> int:
    info = probe(args.ffprobe, args.input)
    rungs = ladder.plan(
        ladder.parse_ladder(args.ladder), int(info["height"]), quality_of(args.plans, args.stream)
    )
    directory = args.out / args.stream
    directory.mkdir(parents=True, exist_ok=True)
    output = ladder.Output(directory, args.hls_time, args.list_size, args.thumbnail_every)
    encoder = subprocess.Popen(
        ladder.ffmpeg_argv(args.ffmpeg, args.input, rungs, output),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    meter = IngestMeter()
    for pipe, feed in ((encoder.stderr, meter.feed_log_line), (encoder.stdout, meter.feed_progress)):
        threading.Thread(target=_pump, args=(pipe, feed), daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    master = MasterWriter(directory, rungs, args.ffprobe)
    with httpx.Client(timeout=2) as client:
        next_sample = time.monotonic() + args.sample_s
        while not stop.is_set() and encoder.poll() is None:
            stop.wait(min(0.25, max(0.0, next_sample - time.monotonic())))
            if time.monotonic() >= next_sample:
                next_sample += args.sample_s
                _report(args, meter, rungs, client)
            try:
                master.refresh()
            except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                log.warning("the master playlist of %s is not written yet: %s", args.stream, exc)
    if encoder.poll() is None:
        encoder.terminate()
        try:
            encoder.wait(5)
        except subprocess.TimeoutExpired:
            encoder.kill()
    return 0 if stop.is_set() else (encoder.returncode or 1)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s transcoder %(levelname)s %(message)s",
        filename=str(args.log) if args.log else None,
    )
    try:
        return run(args)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        log.error("stream %s was not transcoded: %s", args.stream, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
