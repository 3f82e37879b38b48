"""Media benchmark: what each rendition of the ladder costs, and how late a viewer sees a frame.

    python bench/media.py                    # 720p30 source, 20 s of video, 30 s through the stack
    python bench/media.py --size 1920x1080 --seconds 10 --live-seconds 20

Two parts (docs/media.md "Renditions" quotes the table):

1. CPU per rendition. The transcoder's own ffmpeg command (`infra.ladder.ffmpeg_argv`: every rung,
   the thumbnail, showinfo) runs over a recorded test pattern for ladders of growing size; its CPU
   (user + system, from the process's rusage) per second of video. The floor, measured in the same
   run: decoding the source alone. A rung's cost is what adding it to the ladder added.
2. Glass to glass. The embedded stack with nginx-rtmp: an ffmpeg broadcaster publishes the test
   pattern at real time with its capture clock burnt into the picture (a strip of 24 black/white
   blocks: the capture time in ms, modulo 2^24), through nginx, the transcoder and the signed HLS
   URLs a viewer gets. Each new segment of each variant is fetched as soon as its playlist lists it,
   and its first frame's clock is read back: latency = when the segment could be downloaded - when
   its first frame was captured. The floor is the segment duration (no segment exists before its
   last frame). A player adds its buffer on top (hls.js starts 3 segments behind the live edge).
   The capture time is taken as the broadcaster's launch + the frame's time, so ffmpeg's own
   start-up counts as latency: the figure errs high, never low.

The last line is JSON with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from spaktok.api.auth import mint_token
from spaktok.infra import ladder
from spaktok.infra.devstack import DevStack, free_port
from spaktok.settings import Settings

console = Console(stderr=True)
BITS, BLOCK, STRIP_H = 24, 32, 24  # the clock strip at 1280 px wide; it scales with the picture
LADDERS = ("source", "source,360p", "source,480p", "source,480p,360p", "720p,480p,360p")


def clock_filter(size: str, fps: int, offset_s: float) -> str:
    """A test pattern with the capture clock as a strip of blocks (bit i white = 1), top left."""
    width = int(size.split("x")[0])
    block = max(8, BLOCK * width // 1280)
    value = f"mod(floor((T+{offset_s:.3f})*1000/pow(2,floor(X/{block}))),2)"
    # both inputs in yuv420p before the overlay: negotiated to RGB, geq's `lum` would not be luma
    return (
        f"testsrc=size={size}:rate={fps},format=yuv420p[base];"
        f"color=c=black:size={block * BITS}x{max(8, STRIP_H * width // 1280)}:rate={fps},"
        f"geq=lum='if({value},235,16)':cb=128:cr=128,format=yuv420p[bits];[base][bits]overlay=0:0"
    )


def read_clock(ffmpeg: str, segment: Path, source_width: int) -> int | None:
    """The clock value (ms mod 2^24) in the segment's first frame, or None if unreadable."""
    probe = subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-i",
            str(segment),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    size = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "json", str(segment)],
        capture_output=True, timeout=30, check=False, text=True,
    ).stdout  # fmt: skip
    streams = json.loads(size or "{}").get("streams", [])
    if not streams or not probe.stdout:
        return None
    width, height = int(streams[0]["width"]), int(streams[0]["height"])
    pixels = probe.stdout
    block = max(8, BLOCK * source_width // 1280) * width / source_width
    y = int(max(8, STRIP_H * source_width // 1280) * width / source_width / 2)
    value = 0
    for bit in range(BITS):
        x = int((bit + 0.5) * block)
        if y * width + x >= len(pixels) or height <= y:
            return None
        value |= (pixels[y * width + x] > 128) << bit
    return value


# -- part 1: CPU per rendition ------------------------------------------------------------------


def make_source(path: Path, size: str, fps: int, seconds: float) -> None:
    argv = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", str(fps * 2),
            "-b:v", "3000k", "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(path)]  # fmt: skip
    subprocess.run(argv, check=True, timeout=600)


def cpu_of(argv: list[str]) -> float:
    """CPU seconds (user + system) the command took, from its own rusage."""
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode}): {' '.join(argv)[:300]}")
    return usage.ru_utime + usage.ru_stime


def rendition_costs(source: Path, height: int, seconds: float, work: Path) -> dict[str, Any]:
    floor = cpu_of(["ffmpeg", "-v", "error", "-i", str(source), "-f", "null", "-"]) / seconds
    ladders: dict[str, float] = {}
    for text in LADDERS:
        rungs = ladder.plan(ladder.parse_ladder(text), height)
        out = work / text.replace(",", "_")
        out.mkdir(parents=True, exist_ok=True)
        argv = ladder.ffmpeg_argv("ffmpeg", str(source), rungs, ladder.Output(out, 2, 5, 10))
        with console.status(f"transcoding {seconds:g} s of video with the ladder {text}"):
            ladders[text] = cpu_of(argv) / seconds
    rungs = {
        "360p": ladders["source,360p"] - ladders["source"],
        "480p": ladders["source,480p"] - ladders["source"],
    }
    return {"decode_floor": floor, "ladders": ladders, "rungs": rungs}


# -- part 2: glass to glass ---------------------------------------------------------------------


def start_stream(stack: DevStack) -> tuple[str, str, str]:
    settings = Settings()
    owner = {"Authorization": f"Bearer {mint_token(settings, 'bench-caster', name='Caster')}"}
    viewer = {"Authorization": f"Bearer {mint_token(settings, 'bench-viewer')}"}
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:
        started = client.post("/v1/streams", json={"title": "Media bench", "category": "tech"}, headers=owner)
        started.raise_for_status()
        sid, key = started.json()["streamId"], started.json()["streamKey"]
        deadline = time.monotonic() + 20
        while client.get(f"/v1/streams/{sid}", headers=owner).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the stream's document did not appear")
            time.sleep(0.1)
        return sid, key, viewer["Authorization"]


def playback(stack: DevStack, sid: str, auth: str) -> str:
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            doc = client.get(f"/v1/streams/{sid}", headers={"Authorization": auth}).json()
            if doc.get("ingestStatus") == "live":
                joined = client.post(f"/v1/streams/{sid}/viewers", headers={"Authorization": auth})
                return str(joined.json()["playbackUrl"])
            time.sleep(0.1)
    raise RuntimeError("the stream's ingest did not go live; see <data dir>/nginx/logs/transcoder.log")


def watch(url: str, seconds: float, source_width: int, work: Path) -> dict[str, list[float]]:
    """Poll every variant playlist; fetch each new segment at once and read its first frame's clock."""
    base = url.rsplit("/", 1)[0]
    seen: dict[str, set[str]] = {}
    latencies: dict[str, list[float]] = {}
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            master = client.get(url)
            variants = [line for line in master.text.splitlines() if line.endswith(".m3u8")]
            for variant in variants if master.status_code == 200 else []:
                playlist = client.get(f"{base}/{variant}")
                segments = [line for line in playlist.text.splitlines() if line.endswith(".ts")]
                known = seen.setdefault(variant, set(segments))  # what was there before we looked
                for segment in (s for s in segments if s not in known):
                    known.add(segment)
                    body = client.get(f"{base}/{segment}")
                    arrived = time.time()
                    path = work / f"seen-{segment}"
                    path.write_bytes(body.content)
                    value = read_clock("ffmpeg", path, source_width)
                    if value is not None:
                        captured = BASE_S + value / 1000
                        latencies.setdefault(variant.removesuffix(".m3u8"), []).append(arrived - captured)
            time.sleep(0.05)
    return latencies


BASE_S = 0.0  # the wall time the burnt-in clock counts from (set when the broadcaster starts)


def glass_to_glass(size: str, fps: int, seconds: float, fragment_s: int, work: Path) -> dict[str, Any]:
    global BASE_S
    stack = DevStack(data_dir=work / "stack", api_port=free_port(), partitions=4, media=True)
    stack.hls_fragment_s = fragment_s
    with console.status("starting the embedded stack with nginx-rtmp"):
        stack.start()
    encoder = None
    try:
        sid, key, viewer = start_stream(stack)
        launched = time.time()
        offset = launched % 16384  # the clock counts ms from BASE_S, within 2^24 ms
        BASE_S = launched - offset
        clock = clock_filter(size, fps, offset)
        argv = ["ffmpeg", "-nostdin", "-v", "error", "-re", "-filter_complex", clock,
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
                "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
                "-g", str(fps), "-b:v", "3000k", "-c:a", "aac",
                "-f", "flv", f"{stack.rtmp_url}/{key}"]  # fmt: skip
        encoder = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = playback(stack, sid, viewer)
        with console.status(f"watching every rendition for {seconds:g} s"):
            latencies = watch(url, seconds, int(size.split("x")[0]), work)
    finally:
        if encoder is not None:
            encoder.send_signal(signal.SIGTERM)
            encoder.wait(10)
        with console.status("stopping the stack"):
            stack.stop()
    return {"fragment_s": fragment_s, "latencies": latencies}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(costs: dict[str, Any], live: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    floor = costs["decode_floor"]
    table = Table(title=f"Transcoding a {args.size} {args.fps} fps source (cores per stream)")
    for column in ("ladder / rung", "cores", "× decoding the source"):
        table.add_column(column, justify="right")
    table.add_row("decode only (floor)", f"{floor:.3f}", "1.0")
    for name, cores in costs["ladders"].items():
        table.add_row(f"ladder {name}", f"{cores:.3f}", f"{cores / floor:.1f}")
    for name, cores in costs["rungs"].items():
        table.add_row(f"+ rung {name}", f"{cores:.3f}", f"{cores / floor:.1f}")
    console.print(table)
    fragment = live["fragment_s"]
    latency = Table(title=f"Capture -> segment downloadable ({fragment} s segments, floor = {fragment} s)")
    for column in ("rendition", "segments", "p50 s", "p95 s", "p50 ÷ floor"):
        latency.add_column(column, justify="right")
    summary: dict[str, Any] = {}
    for rung, values in sorted(live["latencies"].items()):
        p50, p95 = percentile(values, 50), percentile(values, 95)
        latency.add_row(rung, str(len(values)), f"{p50:.2f}", f"{p95:.2f}", f"{p50 / fragment:.2f}")
        summary[rung] = {"segments": len(values), "p50_s": round(p50, 3), "p95_s": round(p95, 3)}
    console.print(latency)
    return {
        "source": f"{args.size}@{args.fps}",
        "decode_floor_cores": round(floor, 3),
        "dev_ladder_cores": round(costs["ladders"][ladder.DEV_LADDER], 3),
        "production_ladder_cores": round(costs["ladders"]["720p,480p,360p"], 3),
        "rung_cores": {k: round(v, 3) for k, v in costs["rungs"].items()},
        "segment_s": fragment,
        "latency": summary,
    }


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20, help="video transcoded per ladder (part 1)")
    parser.add_argument(
        "--live-seconds", type=float, default=30, help="time watched through the stack (part 2)"
    )
    parser.add_argument("--fragment", type=int, default=1, help="HLS segment length, seconds")
    args = parser.parse_args()
    height = int(args.size.split("x")[1])
    with tempfile.TemporaryDirectory(prefix="spaktok-bench-media-") as tmp:
        work = Path(tmp)
        with console.status("recording the source"):
            make_source(work / "source.flv", args.size, args.fps, args.seconds)
        costs = rendition_costs(work / "source.flv", height, args.seconds, work / "ladders")
        live = glass_to_glass(args.size, args.fps, args.live_seconds, args.fragment, work)
    figures = report(costs, live, args)
    print(json.dumps(figures))  # noqa: T201 - the bench's machine-readable last line


if __name__ == "__main__":
    main()
