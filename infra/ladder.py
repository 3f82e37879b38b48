"""The transcoding ladder: which renditions a published stream gets, and how ffmpeg makes them.

Pure functions, so the plan is tested without a media server (docs/media.md "Renditions"). A
ladder is named rungs (`source,480p,360p`); `source` passes the broadcaster's video through
untouched, every other rung is an H.264 encode at that height. A rung is never taller than the
source (no upscaling), and the stream's `quality` names its top rung (`720p`: nothing above 720p
even from a 1080p source).

The master playlist is written by us, not by ffmpeg's HLS muxer: ffmpeg leaves out `CODECS` and
counts only the audio in `BANDWIDTH` for a passed-through video. `BANDWIDTH` here is the peak
bitrate of the variant's segments measured on disk, as the HLS specification defines it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCE = "source"
AUDIO_KBPS = 96
MASTER = "index.m3u8"  # the playback URL names it, as it named nginx's single playlist before
THUMBNAIL = "thumb.jpg"
# how much of the live input ffprobe and ffmpeg read before starting: they read it in real time, so
# FFmpeg's default (5 s each) held the first playlist ~9 s after the encoder began; 1 s finds the video
# and audio of an RTMP publish (~5 s to the first playlist; docs/media.md "Time to the first playlist")
INPUT_ANALYSIS = ("-analyzeduration", "1000000")


@dataclass(frozen=True)
class Rung:
    name: str
    height: int  # 0 for the source: whatever the broadcaster sends
    video_kbps: int  # the encode's target (0 for the source)

    @property
    def max_kbps(self) -> int:
        return self.video_kbps * 11 // 10


# Heights and bitrates of the usual H.264 ladders (Apple's HLS authoring guide, rounded)
RUNGS = {
    "1080p": Rung("1080p", 1080, 5000),
    "720p": Rung("720p", 720, 2800),
    "480p": Rung("480p", 480, 1200),
    "360p": Rung("360p", 360, 700),
    "240p": Rung("240p", 240, 400),
}
PRODUCTION_LADDER = "1080p,720p,480p,360p"
DEV_LADDER = "source,480p,360p"
QUALITY_TOP = {"auto": None, "1080p": 1080, "720p": 720}


def parse_ladder(text: str) -> tuple[Rung, ...]:
    """`source,480p,360p` as rungs, tallest first; unknown names are a configuration error."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n != SOURCE and n not in RUNGS]
    if not names or unknown:
        known = ", ".join([SOURCE, *RUNGS])
        raise ValueError(f"unknown rung(s) {unknown or '(empty ladder)'} in the ladder {text!r}; use {known}")
    rungs = [Rung(SOURCE, 0, 0) if n == SOURCE else RUNGS[n] for n in dict.fromkeys(names)]
    return tuple(sorted(rungs, key=lambda r: (r.name != SOURCE, -r.height)))


def plan(ladder: tuple[Rung, ...], source_height: int, quality: str = "auto") -> tuple[Rung, ...]:
    """The rungs this stream gets: none taller than the source or than `quality`'s top rung.

    The source rung is kept when the source is within `quality`; an encoded rung at the source's
    own height is dropped when the source is passed through (it would be the same picture).
    Always at least one rung: a source below every rung gets its own height.
    """
    top = QUALITY_TOP.get(quality) or source_height
    limit = min(top, source_height)
    passthrough = any(r.name == SOURCE for r in ladder) and source_height <= top
    chosen = [r for r in ladder if r.name != SOURCE and r.height <= limit]
    if passthrough:
        chosen = [Rung(SOURCE, source_height, 0), *(r for r in chosen if r.height < source_height)]
    if not chosen:
        lowest = min((r for r in ladder if r.name != SOURCE), key=lambda r: r.height, default=None)
        kbps = lowest.video_kbps if lowest else 700
        chosen = [Rung(f"{limit}p", limit, kbps)]
    return tuple(chosen)


@dataclass(frozen=True)
class Output:
    directory: Path
    hls_time_s: float
    list_size: int
    thumbnail_every_s: float


def ffmpeg_argv(ffmpeg: str, input_url: str, rungs: tuple[Rung, ...], out: Output) -> list[str]:
    """One ffmpeg reading the published stream: every rung as an HLS variant (`{rung}.m3u8`,
    `{rung}_{n}.ts`), a thumbnail JPEG rewritten every `thumbnail_every_s`, and `showinfo` on the
    decoded input for the health figures (frame rate, keyframes, resolution)."""
    encoded = [r for r in rungs if r.name != SOURCE]
    branches = len(encoded) + 1  # + the thumbnail
    graph = [f"[0:v]showinfo=checksum=0,split={branches}" + "".join(f"[in{i}]" for i in range(branches))]
    for i, rung in enumerate(encoded):
        graph.append(f"[in{i}]scale=-2:{rung.height},format=yuv420p[v{i}]")
    graph.append(f"[in{len(encoded)}]fps=1/{out.thumbnail_every_s:g},scale=-2:360[thumb]")
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "info", "-nostats", "-progress", "pipe:1"]
    argv += [*INPUT_ANALYSIS, "-i", input_url, "-filter_complex", ";".join(graph)]
    maps: list[str] = []
    codecs: list[str] = []
    names: list[str] = []
    v = 0
    for index, rung in enumerate(rungs):
        if rung.name == SOURCE:
            maps += ["-map", "0:v:0"]
            codecs += [f"-c:v:{index}", "copy"]
        else:
            maps += ["-map", f"[v{v}]"]
            codecs += [f"-c:v:{index}", "libx264", f"-b:v:{index}", f"{rung.video_kbps}k"]
            codecs += [
                f"-maxrate:v:{index}",
                f"{rung.max_kbps}k",
                f"-bufsize:v:{index}",
                f"{rung.video_kbps * 2}k",
            ]
            v += 1
        maps += ["-map", "0:a:0?"]
        names.append(f"v:{index},a:{index},name:{rung.name}")
    gop = [
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-force_key_frames",
        f"expr:gte(t,n_forced*{out.hls_time_s:g})",
    ]
    argv += maps + codecs + gop + ["-sc_threshold", "0", "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k"]
    argv += ["-f", "hls", "-hls_time", f"{out.hls_time_s:g}", "-hls_list_size", str(out.list_size)]
    argv += [
        "-hls_flags",
        "delete_segments+independent_segments+omit_endlist",
        "-hls_start_number_source",
        "epoch",
    ]
    argv += ["-var_stream_map", " ".join(names)]
    argv += ["-hls_segment_filename", str(out.directory / "%v_%d.ts"), str(out.directory / "%v.m3u8")]
    argv += ["-map", "[thumb]", "-update", "1", "-atomic_writing", "1", "-q:v", "5"]
    argv += [str(out.directory / THUMBNAIL)]
    return argv


@dataclass(frozen=True)
class Variant:
    rung: str
    width: int
    height: int
    peak_bps: int
    codecs: str  # e.g. "avc1.64001f,mp4a.40.2"


def master_playlist(variants: list[Variant]) -> str:
    """The HLS master playlist: one `EXT-X-STREAM-INF` per variant, highest bandwidth first."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: -v.peak_bps):
        lines.append(
            f'#EXT-X-STREAM-INF:BANDWIDTH={v.peak_bps},RESOLUTION={v.width}x{v.height},CODECS="{v.codecs}"'
        )
        lines.append(f"{v.rung}.m3u8")
    return "\n".join(lines) + "\n"


H264_PROFILES = {"Baseline": "4200", "Constrained Baseline": "42e0", "Main": "4d40", "High": "6400"}


def codecs(video_profile: str, video_level: int, has_audio: bool) -> str:
    """RFC 6381 codec names for H.264 (profile_idc, constraint flags, level_idc) and AAC-LC."""
    video = f"avc1.{H264_PROFILES.get(video_profile, '6400')}{video_level:02x}"
    return f"{video},mp4a.40.2" if has_audio else video
