"""End to end with a real media server (issue #7): ffmpeg publishes a test pattern over RTMP to
nginx-rtmp, which asks the API; HLS and the replay are fetched through signed URLs.

Skipped, with the reason, where nginx, its RTMP module or ffmpeg is missing (`.ci/run` installs
them from Debian packages). Runs on its own stack: short HLS fragments, a 5 s reconnect grace, and
a clock moved a month ahead for retention.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import Api, eventually, problem, start_stack, uid

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
    }
    stack, cleanup = start_stack("media", env=env, media=True, hls_fragment_s=1)
    try:
        yield stack
    finally:
        cleanup()


def broadcast(stack: DevStack, key: str, seconds: float | None = None) -> subprocess.Popen[bytes]:
    """ffmpeg pushing a generated test pattern with a tone, like OBS would, to ingest URL + "/" + key."""
    limit = ["-t", str(seconds)] if seconds else []
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
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

        playlist = eventually(lambda: _fetch_playlist(url), timeout=20, interval=0.25)
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
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200, response.status_code
    assert response.text.startswith("#EXTM3U") and ".ts" in response.text
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
