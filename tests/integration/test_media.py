"""End to end with a real media server (issue #7): ffmpeg publishes a test pattern over RTMP to
nginx-rtmp, which asks the API; HLS and the replay are fetched through signed URLs.

Skipped, with the reason, where nginx, its RTMP module or ffmpeg is missing (`.ci/run` installs
them from Debian packages). Runs on its own stack: short HLS fragments, a 5 s reconnect grace, and
a clock moved a month ahead for retention.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Api, eventually, problem, start_stack, uid
from websockets.sync.client import ClientConnection, connect

from spaktok import clock
from spaktok.api.auth import mint_token
from spaktok.api.media_links import playback_url, stream_key, viewer_tag
from spaktok.infra.devstack import DevStack
from spaktok.infra.nginx import INSTALL_HINT, missing_media_tools
from spaktok.settings import Settings

MISSING = missing_media_tools()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}: {INSTALL_HINT}")

GRACE_S = 5  # long enough for ffmpeg to reconnect within it on a busy machine


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    env = {
        "SPAKTOK_RECONNECT_GRACE_S": str(GRACE_S),
        "SPAKTOK_INGEST_CHECK_INTERVAL_S": "0.25",
        "SPAKTOK_VIEWER_SWEEP_INTERVAL_S": "0.5",  # also the retention timer's interval
        "SPAKTOK_HEALTH_SAMPLE_S": "1",
        "SPAKTOK_THUMBNAIL_INTERVAL_S": "1",
    }
    stack, cleanup = start_stack("media", env=env, media=True, hls_fragment_s=1)
    try:
        yield stack
    finally:
        cleanup()


def broadcast(
    stack: DevStack, key: str, seconds: float | None = None, size: str = "320x240"
) -> subprocess.Popen[bytes]:
    """ffmpeg pushing a generated test pattern with a tone, like OBS would, to ingest URL + "/" + key."""
    limit = ["-t", str(seconds)] if seconds else []
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc=size={size}:rate=15",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", *limit,
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15",
            "-c:a", "aac", "-b:a", "64k", "-f", "flv", f"{stack.rtmp_url}/{key}"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def doc(api: Api, sid: str) -> dict[str, Any]:
    response = api.get(f"/v1/streams/{sid}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_publish_play_end_after_grace_and_replay(stack: DevStack) -> None:
    settings = Settings()
    owner_id = uid("caster")
    owner = Api(stack.api_url, mint_token(settings, owner_id, name="Caster"))
    fan = Api(stack.api_url, mint_token(settings, uid("fan")))
    troll_id = uid("troll")
    troll = Api(stack.api_url, mint_token(settings, troll_id))

    started = owner.post(
        "/v1/streams", json={"title": "Test pattern", "category": "tech", "isRecorded": True}
    )
    assert started.status_code == 201, started.text
    sid, first_key = started.json()["streamId"], started.json()["streamKey"]
    assert started.json()["ingestUrl"] == stack.rtmp_url

    # rotating the key is a command; the old key stops working
    rotated = owner.post(f"/v1/streams/{sid}/stream-key")
    assert rotated.status_code == 200, rotated.text
    key = rotated.json()["streamKey"]
    assert key != first_key
    eventually(lambda: _assert(doc(owner, sid)["streamKey"] == key))  # the owner's document follows
    problem(fan.post(f"/v1/streams/{sid}/stream-key"), 403, "not-stream-owner")

    # a wrong key (forged, or the rotated-away one) is refused by nginx on the API's 403
    forged = key[:-4] + ("0000" if not key.endswith("0000") else "1111")
    for bad in (forged, first_key, stream_key(settings.stream_key_secret, "st_nosuchstream", 1)):
        refused = broadcast(stack, bad, seconds=3)
        _, err = refused.communicate(timeout=20)
        assert refused.returncode != 0, f"a publish with a wrong key was accepted: {err.decode()[-300:]}"
    assert doc(owner, sid)["ingestStatus"] == "waiting"

    # the real key: the stream is ingesting, HLS is produced under the stream id (not the key)
    encoder = broadcast(stack, key)
    try:
        eventually(lambda: _assert(doc(owner, sid)["ingestStatus"] == "live"), timeout=15)
        joined = fan.post(f"/v1/streams/{sid}/viewers")
        assert joined.status_code == 200, joined.text
        url = joined.json()["playbackUrl"]
        assert f"/{sid}/index.m3u8" in url and key not in url

        master = eventually(lambda: _fetch_playlist(url), timeout=30, interval=0.25)
        variant = next(line for line in master.splitlines() if line.endswith(".m3u8"))
        playlist = _fetch_playlist(url.rsplit("/", 1)[0] + "/" + variant)
        segment = next(line for line in playlist.splitlines() if line.endswith(".ts"))
        media = httpx.get(url.rsplit("/", 1)[0] + "/" + segment, timeout=5)  # the token covers segments
        assert media.status_code == 200 and len(media.content) > 1000

        # a bad or expired signature is refused by nginx
        bad_token = re.sub(r"/hls/[^/]+/", "/hls/AAAAAAAAAAAAAAAAAAAAAA/", url)
        assert httpx.get(bad_token, timeout=5).status_code == 403
        tampered = url.replace(sid, sid[:-1] + ("0" if sid[-1] != "0" else "1"))
        assert httpx.get(tampered, timeout=5).status_code == 403
        fan_id = url.split("/hls/")[1].split("/")[2]  # the viewer segment (base64url of fan's id)
        others = url.replace(f"/{fan_id}/", f"/{viewer_tag('someone-else')}/")
        assert httpx.get(others, timeout=5).status_code == 403  # the token covers the viewer
        expired = playback_url(
            f"{stack.media_http_url}/hls",
            settings.media_link_secret,
            sid,
            ttl_s=10,
            now=time.time() - 60,
            viewer_id="someone",
        )
        assert httpx.get(expired, timeout=5).status_code == 410
        assert httpx.get(f"{stack.media_http_url}/hls/{sid}/index.m3u8", timeout=5).status_code == 404
    finally:
        encoder.terminate()
        encoder.wait(10)

    # publish-done starts the grace period; the encoder coming back within it keeps the stream live
    eventually(lambda: _assert(doc(owner, sid)["ingestStatus"] == "reconnecting"), timeout=10)
    assert doc(owner, sid)["status"] == "live"
    encoder = broadcast(stack, key)
    try:
        eventually(lambda: _assert(doc(owner, sid)["ingestStatus"] == "live"), timeout=GRACE_S)
        time.sleep(1.5)  # a second recorded part of some length
    finally:
        encoder.terminate()
        encoder.wait(10)
    stopped_at = time.monotonic()

    # stopped for good: the stream stays live for the grace period, then ends
    eventually(lambda: _assert(doc(owner, sid)["ingestStatus"] == "reconnecting"), timeout=10)
    assert doc(owner, sid)["status"] == "live"
    eventually(lambda: _assert(doc(owner, sid)["status"] == "ended"), timeout=GRACE_S + 15)
    assert time.monotonic() - stopped_at >= GRACE_S - 0.5
    ended = doc(owner, sid)
    assert ended["ingestStatus"] == "stopped" and ended["recordingUrl"] == f"/v1/streams/{sid}/replay"

    # the recording became a replay: signed, expiring URLs of an MP4 and its thumbnail
    replay = eventually(lambda: _replay(fan, sid, parts=2), timeout=20)  # one part per publish
    assert (
        all(p["duration"] > 0.3 for p in replay["parts"]) and replay["expiresIn"] == settings.replay_url_ttl_s
    )
    video = httpx.get(replay["replayUrl"], timeout=10)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    thumb = httpx.get(replay["thumbnailUrl"], timeout=10)
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"  # a JPEG
    assert httpx.get(replay["replayUrl"].replace("/recordings/", "/recordings/x"), timeout=5).status_code in (
        403,
        404,
    )

    # privacy: a banned user gets no replay
    assert owner.post(f"/v1/streams/{sid}/bans", json={"userId": troll_id}).status_code == 200
    eventually(lambda: problem(troll.get(f"/v1/streams/{sid}/replay"), 403, "user-banned"))

    # retention: 31 days later the recording is deleted through an event, and its files with it
    files = sorted((stack.data_dir / "media" / "recordings" / sid).iterdir())
    assert sorted(f.suffix for f in files) == [".jpg", ".jpg", ".mp4", ".mp4"]
    clock.set_offset(stack.data_dir, 31 * 86400)
    eventually(lambda: problem(fan.get(f"/v1/streams/{sid}/replay"), 404, "replay-not-found"), timeout=20)
    eventually(lambda: _assert(not any(f.exists() for f in files)), timeout=20)
    assert httpx.get(replay["replayUrl"], timeout=5).status_code == 404

    # the key never reached a log
    for log in stack.log_dir.glob("*.log"):
        assert key not in log.read_text(errors="replace"), f"the stream key is in {log.name}"
    for log in (stack.data_dir / "nginx" / "logs").glob("*.log"):
        assert key not in log.read_text(errors="replace"), f"the stream key is in {log.name}"


def _assert(condition: bool) -> None:
    assert condition


def _fetch_playlist(url: str) -> str:
    """A master playlist (naming variants) or a variant playlist that lists a segment already."""
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, response.status_code
    assert response.text.startswith("#EXTM3U") and (".ts" in response.text or ".m3u8" in response.text)
    return response.text


def _replay(api: Api, sid: str, parts: int) -> dict[str, Any]:
    response = api.get(f"/v1/streams/{sid}/replay")
    assert response.status_code == 200, response.text
    assert len(response.json()["parts"]) == parts
    return response.json()  # type: ignore[no-any-return]


def test_hooks_refuse_bad_input_with_problems(stack: DevStack) -> None:
    hooks = httpx.Client(base_url=stack.api_url, timeout=10)
    form = {"app": "live", "name": "sk_nope", "call": "publish"}
    problem(hooks.post("/v1/hooks/rtmp/publish", data=form), 403, "invalid-stream-key")
    problem(hooks.post("/v1/hooks/rtmp/publish", content=b"\xff\xfe"), 400, "invalid-hook")
    problem(hooks.post("/v1/hooks/rtmp/publish-done", data={}), 403, "invalid-stream-key")
    owner = Api(stack.api_url, mint_token(Settings(), uid("owner")))
    sid = owner.post("/v1/streams", json={"title": "t", "category": "c", "isRecorded": True}).json()[
        "streamId"
    ]
    key = stream_key(Settings().stream_key_secret, sid, 1)
    for path in (
        "/etc/passwd",
        "relative.flv",
        "/tmp/\x00.flv",
        f"{stack.data_dir}/media/incoming/{sid}-1.flv",
    ):
        problem(
            hooks.post("/v1/hooks/rtmp/record-done", data={"app": "live", "name": key, "path": path}),
            422,
            "invalid-recording",
        )
    eventually(lambda: problem(owner.get(f"/v1/streams/{sid}/replay"), 404, "replay-not-found"))


# --- the ladder, live thumbnails and stream health (issue #18) --------------------------------

LADDER_SOURCE = (960, 540)  # above 480p, so the dev ladder's every rung applies
RUNG_SIZES = {"source": (960, 540), "480p": (854, 480), "360p": (640, 360)}


def test_ladder_thumbnail_and_health_while_publishing(stack: DevStack, tmp_path: Path) -> None:
    settings = Settings()
    owner_id = uid("caster")
    owner_token = mint_token(settings, owner_id, name="Caster")
    owner = Api(stack.api_url, owner_token)
    fan_token = mint_token(settings, uid("fan"))
    fan = Api(stack.api_url, fan_token)
    started = owner.post("/v1/streams", json={"title": "Ladder", "category": "tech"})
    assert started.status_code == 201, started.text
    sid, key = started.json()["streamId"], started.json()["streamKey"]
    eventually(lambda: doc(owner, sid))
    problem(owner.get(f"/v1/streams/{sid}/health"), 404, "health-not-found")
    problem(fan.get(f"/v1/streams/{sid}/health"), 403, "forbidden")  # the broadcaster's, not a viewer's

    encoder = broadcast(stack, key, size="x".join(map(str, LADDER_SOURCE)))
    with (
        connect(feed_url(stack, sid, owner_token), open_timeout=10) as owner_conn,
        connect(feed_url(stack, sid, fan_token), open_timeout=10) as fan_conn,
    ):
        owner_feed, fan_feed = Feed(owner_conn), Feed(fan_conn)
        try:
            eventually(lambda: _assert(doc(owner, sid)["ingestStatus"] == "live"), timeout=15)
            url = fan.post(f"/v1/streams/{sid}/viewers").json()["playbackUrl"]
            base = url.rsplit("/", 1)[0]

            # every rung of the dev ladder, each described and each decoding at its own size
            variants = eventually(lambda: _master_variants(url, len(RUNG_SIZES)), timeout=40, interval=0.5)
            assert sorted(variants) == sorted(f"{rung}.m3u8" for rung in RUNG_SIZES)
            for uri, attributes in variants.items():
                rung = uri.removesuffix(".m3u8")
                width, height = RUNG_SIZES[rung]
                assert attributes["RESOLUTION"] == f"{width}x{height}"
                assert int(attributes["BANDWIDTH"]) > 50_000
                assert attributes["CODECS"].startswith('"avc1.') and "mp4a.40.2" in attributes["CODECS"]
                segment = _last_segment(base + "/" + uri)
                assert _probe_size(tmp_path / f"{rung}.ts", base + "/" + segment) == (width, height)

            # the live thumbnail: a JPEG of the stream, signed for the caller, in the document and discovery
            thumb_url = eventually(lambda: _thumbnail_url(fan, sid), timeout=20)
            assert f"/{sid}/thumb.jpg" in thumb_url and "/hls/" in thumb_url
            jpeg = httpx.get(thumb_url, timeout=5)
            assert jpeg.status_code == 200 and jpeg.content[:2] == b"\xff\xd8"
            assert jpeg.headers["content-type"] == "image/jpeg"
            assert _probe_size(tmp_path / "thumb.jpg", thumb_url)[1] == 360
            listed = fan.get("/v1/streams", params={"status": "live", "limit": 100}).json()["streams"]
            assert next(s for s in listed if s["streamId"] == sid)["thumbnailUrl"].endswith(
                f"/{sid}/thumb.jpg"
            )
            forged = thumb_url.replace(f"/{sid}/", f"/{sid[:-1]}{'0' if sid[-1] != '0' else '1'}/")
            assert httpx.get(forged, timeout=5).status_code == 403

            # health figures move while publishing: the source's size, frame rate and keyframes
            first = eventually(lambda: _health(owner, sid, _measured), timeout=20)
            assert (first["width"], first["height"]) == LADDER_SOURCE and first["bitrateKbps"] > 0
            assert first["keyframeIntervalS"] == pytest.approx(1.0, abs=0.2)  # -g 15 at 15 fps
            assert first["renditions"] == ["source", "480p", "360p"] and first["stale"] is False
            eventually(lambda: _health(owner, sid, lambda h: h["sampledAt"] > first["sampledAt"]), timeout=10)
            assert doc(owner, sid)["bitrate"] > 0  # the document's `bitrate` is the ingest's
            health_item = owner_feed.until(lambda item: item["type"] == "health")
            assert health_item["frameRate"] is not None and "warnings" in health_item

            # a stalled encoder (still connected, sending nothing) raises a warning the owner sees
            encoder.send_signal(signal.SIGSTOP)
            stalled = eventually(lambda: _health(owner, sid, _has("ingest-stalled")), timeout=20)
            assert stalled["bitrateKbps"] == 0  # frames decoded from what was buffered may still count
            assert "encoder" in stalled["warnings"][0]["message"]
            owner_feed.until(lambda item: item["type"] == "health" and "ingest-stalled" in item["warnings"])
            encoder.send_signal(signal.SIGCONT)
            eventually(lambda: _health(owner, sid, lambda h: not _has("ingest-stalled")(h)), timeout=20)

            # every sample is in ClickHouse: the platform's quality figures count the stall
            admin = Api(stack.api_url, mint_token(settings, uid("admin"), roles=["admin"]))
            quality = eventually(lambda: _stalled_streams(admin), timeout=20)
            assert quality["samples"] >= 3 and quality["averageBitrateKbps"] > 0
        finally:
            encoder.send_signal(signal.SIGCONT)
            encoder.terminate()
            encoder.wait(10)
        fan_feed.read(0.5)
        assert not [item for item in fan_feed.items if item["type"] == "health"]  # the owner's only

    # the stream's end removes its live media; the document falls back to no thumbnail
    assert owner.post(f"/v1/streams/{sid}/end").status_code == 200
    eventually(lambda: _assert(not (stack.data_dir / "media" / "hls" / sid).exists()), timeout=20)
    assert doc(fan, sid)["thumbnailUrl"] is None


def feed_url(stack: DevStack, sid: str, token: str) -> str:
    return stack.api_url.replace("http://", "ws://") + f"/v1/streams/{sid}/live?access_token={token}"


class Feed:
    """A WebSocket client of the stream's feed, read on demand (the items it got so far kept)."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.items: list[dict[str, Any]] = []

    def read(self, timeout: float) -> None:
        try:
            while True:
                message = json.loads(self.conn.recv(timeout=timeout))
                self.items += message if isinstance(message, list) else [message]
                timeout = 0.01
        except TimeoutError:
            return

    def until(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((item for item in self.items if wanted(item)), None)
            if found is not None:
                return found
            self.read(0.5)
        raise AssertionError(
            f"no such feed item in {timeout} s; got types {[i.get('type') for i in self.items]}"
        )


def _measured(health: dict[str, Any]) -> bool:
    """A sample with the source's frame rate and keyframe interval. A window in which the transcoder
    saw fewer than two keyframes has no interval: its first one may, now that it starts after 1 s of
    input rather than 5 s (ladder.INPUT_ANALYSIS)."""
    return bool((health["frameRate"] or 0) > 5 and health["keyframeIntervalS"] is not None)


def _master_variants(url: str, count: int) -> dict[str, dict[str, str]]:
    text = _fetch_playlist(url)
    lines = text.splitlines()
    variants = {}
    for info, uri in zip(lines, lines[1:], strict=False):
        if info.startswith("#EXT-X-STREAM-INF:"):
            pairs = re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', info.split(":", 1)[1])
            variants[uri] = dict(pairs)
    assert len(variants) == count, text
    return variants


def _last_segment(url: str) -> str:
    playlist = eventually(lambda: _fetch_playlist(url), timeout=20, interval=0.25)
    return [line for line in playlist.splitlines() if line.endswith(".ts")][-1]


def _probe_size(path: Path, url: str) -> tuple[int, int]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, (url, response.status_code)
    path.write_bytes(response.content)
    argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height"]
    done = subprocess.run([*argv, "-of", "json", str(path)], capture_output=True, timeout=30, check=True)
    stream = json.loads(done.stdout)["streams"][0]
    return int(stream["width"]), int(stream["height"])


def _thumbnail_url(api: Api, sid: str) -> str:
    url = doc(api, sid)["thumbnailUrl"]
    assert url, "no live thumbnail yet"
    return str(url)


def _health(api: Api, sid: str, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    response = api.get(f"/v1/streams/{sid}/health")
    assert response.status_code == 200, response.text
    health: dict[str, Any] = response.json()
    assert wanted(health), health
    return health


def _stalled_streams(admin: Api) -> dict[str, Any]:
    response = admin.get("/v1/admin/metrics", params={"hours": 1})
    assert response.status_code == 200, response.text
    quality: dict[str, Any] = response.json()["window"]["ingestHealth"]
    assert quality["warnings"]["ingest-stalled"]["streams"] >= 1, quality
    return quality


def _has(code: str) -> Callable[[dict[str, Any]], bool]:
    return lambda health: code in [w["code"] for w in health["warnings"]]
