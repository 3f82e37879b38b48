"""The transcoding ladder (issue #18): which renditions a stream gets, the ffmpeg command that makes
them, the master playlist and the health figures read from ffmpeg and nginx. Pure: no ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaktok.infra import ladder
from spaktok.infra.ingest_meter import IngestMeter, IngestStat, ingest_stat
from spaktok.infra.transcoder import variant_peak

DEV = ladder.parse_ladder(ladder.DEV_LADDER)
PRODUCTION = ladder.parse_ladder(ladder.PRODUCTION_LADDER)


def names(rungs: tuple[ladder.Rung, ...]) -> list[str]:
    return [r.name for r in rungs]


def test_the_dev_ladder_passes_the_source_through_and_adds_what_is_below_it() -> None:
    assert names(ladder.plan(DEV, 720)) == ["source", "480p", "360p"]
    assert names(ladder.plan(DEV, 480)) == ["source", "360p"]  # a 480p encode of 480p is the source
    assert names(ladder.plan(DEV, 240)) == ["source"]


def test_the_production_ladder_never_upscales() -> None:
    assert names(ladder.plan(PRODUCTION, 1080)) == ["1080p", "720p", "480p", "360p"]
    assert names(ladder.plan(PRODUCTION, 720)) == ["720p", "480p", "360p"]
    assert names(ladder.plan(PRODUCTION, 700)) == ["480p", "360p"]
    assert names(ladder.plan(PRODUCTION, 240)) == ["240p"]  # below every rung: its own height


def test_quality_names_the_top_rung() -> None:
    assert names(ladder.plan(PRODUCTION, 1080, "720p")) == ["720p", "480p", "360p"]
    assert names(ladder.plan(PRODUCTION, 1080, "1080p")) == ["1080p", "720p", "480p", "360p"]
    # a 1080p source is above a 720p stream's top rung: not passed through
    assert names(ladder.plan(DEV, 1080, "720p")) == ["480p", "360p"]
    assert names(ladder.plan(DEV, 720, "720p")) == ["source", "480p", "360p"]


def test_a_ladder_with_an_unknown_rung_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown rung.*4k.*use source, 1080p"):
        ladder.parse_ladder("source,4k")
    with pytest.raises(ValueError, match="empty"):
        ladder.parse_ladder(" , ")


def test_ffmpeg_makes_one_variant_per_rung_and_a_thumbnail(tmp_path: Path) -> None:
    out = ladder.Output(tmp_path, hls_time_s=1, list_size=5, thumbnail_every_s=10)
    argv = ladder.ffmpeg_argv("ffmpeg", "rtmp://x/hls/st", ladder.plan(DEV, 720), out)
    assert (
        argv[argv.index("-var_stream_map") + 1] == "v:0,a:0,name:source v:1,a:1,name:480p v:2,a:2,name:360p"
    )
    assert argv[argv.index("-i") - 2 : argv.index("-i")] == ["-analyzeduration", "1000000"]  # not 5 s
    graph = argv[argv.index("-filter_complex") + 1]
    assert "showinfo=checksum=0" in graph and "scale=-2:480" in graph and "scale=-2:360" in graph
    assert "fps=1/10" in graph and argv[-1] == str(tmp_path / ladder.THUMBNAIL)
    assert argv[argv.index("-c:v:0") + 1] == "copy" and argv[argv.index("-c:v:1") + 1] == "libx264"


def test_the_master_playlist_names_every_variant_with_bandwidth_resolution_and_codecs() -> None:
    text = ladder.master_playlist(
        [
            ladder.Variant("360p", 640, 360, 800_000, ladder.codecs("High", 30, True)),
            ladder.Variant("source", 1280, 720, 3_000_000, ladder.codecs("Constrained Baseline", 31, True)),
        ]
    )
    assert text.splitlines()[3:] == [
        '#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.42e01f,mp4a.40.2"',
        "source.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"',
        "360p.m3u8",
    ]


def test_a_variant_peak_is_its_largest_segment_bitrate(tmp_path: Path) -> None:
    (tmp_path / "a_1.ts").write_bytes(b"x" * 1000)
    (tmp_path / "a_2.ts").write_bytes(b"x" * 3000)
    (tmp_path / "a.m3u8").write_text("#EXTM3U\n#EXTINF:2.000000,\na_1.ts\n#EXTINF:1.500000,\na_2.ts\n")
    assert variant_peak(tmp_path / "a.m3u8") == (16000, str(tmp_path / "a_1.ts"))
    assert variant_peak(tmp_path / "missing.m3u8") == (0, None)


SHOWINFO = (
    "[Parsed_showinfo_0 @ 0x55] n:  {n} pts:  {pts} pts_time:{t}  pos: 678 fmt:yuv420p sar:1/1 "
    "s:640x360 i:P iskey:{key} type:{kind} checksum:0 plane_checksum:[0 0 0]"
)


def frame(n: int, t: float, key: bool) -> str:
    return SHOWINFO.format(n=n, pts=int(t * 1000), t=t, key=int(key), kind="I" if key else "P")


def test_the_meter_reads_frame_rate_keyframes_and_size_from_showinfo() -> None:
    meter = IngestMeter()
    meter.sample(2, IngestStat(bytes_in=0, dropped=0))
    for n in range(60):  # 30 fps for 2 s, a keyframe every second
        meter.feed_log_line(frame(n, n / 30, key=n % 30 == 0))
    meter.feed_log_line("[h264 @ 0x55] some other line n: 3")
    meter.feed_progress("speed=0.95x\n")
    meter.feed_progress("drop_frames=2\n")
    figures = meter.sample(2, IngestStat(bytes_in=250_000, dropped=1))
    assert figures == {
        "bitrateKbps": 1000,
        "frameRate": 30.0,
        "width": 640,
        "height": 360,
        "keyframeIntervalS": 1.0,
        "droppedFrames": 3,
        "speed": 0.95,
    }
    # the next window starts empty: a stalled encoder shows as no frames and no bytes
    stalled = meter.sample(2, IngestStat(bytes_in=250_000, dropped=1))
    assert (stalled["frameRate"], stalled["bitrateKbps"], stalled["droppedFrames"]) == (0.0, 0, 0)


NGINX_STAT = """<rtmp><server><application><name>live</name><live>
<stream><name>st_1</name><bytes_in>123456</bytes_in>
<client><id>1</id><dropped>0</dropped></client>
<client><id>2</id><dropped>7</dropped><publishing/></client>
</stream></live></application>
<application><name>hls</name><live><stream><name>st_1</name><bytes_in>9</bytes_in></stream></live>
</application></server></rtmp>"""


def test_the_publisher_is_found_in_nginx_statistics() -> None:
    assert ingest_stat(NGINX_STAT, "live", "st_1") == IngestStat(bytes_in=123456, dropped=7)
    assert ingest_stat(NGINX_STAT, "hls", "st_1") == IngestStat(bytes_in=9, dropped=0)
    assert ingest_stat(NGINX_STAT, "live", "st_2") is None
    assert ingest_stat("<rtmp", "live", "st_1") is None
