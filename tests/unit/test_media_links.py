"""Stream keys and nginx secure_link URLs (issue #7): pure functions of the secrets."""

from __future__ import annotations

import base64
import hashlib

from spaktok.api.media_links import (
    KeyClaim,
    link_token,
    playback_url,
    recording_url,
    stream_key,
    verify_stream_key,
)

SECRET = "test-secret-0123456789"


def test_a_key_names_its_stream_and_generation_and_verifies() -> None:
    key = stream_key(SECRET, "st_abc", 3)
    assert key.startswith("sk_st_abc_3_")
    assert verify_stream_key(SECRET, key) == KeyClaim("st_abc", 3)


def test_forged_altered_or_foreign_keys_are_refused() -> None:
    key = stream_key(SECRET, "st_abc", 1)
    assert verify_stream_key("another-secret-000000", key) is None
    assert verify_stream_key(SECRET, key.replace("st_abc", "st_abd")) is None  # another stream's id
    assert verify_stream_key(SECRET, key.replace("_1_", "_2_")) is None  # another generation
    assert verify_stream_key(SECRET, key[:-1] + ("0" if key[-1] != "0" else "1")) is None
    for junk in ("", "sk_", "sk_st_abc_1_", "hello", "sk_st_abc_0_" + "0" * 32, key + "x", "é" * 40):
        assert verify_stream_key(SECRET, junk) is None


def test_stream_ids_with_underscores_parse() -> None:
    key = stream_key(SECRET, "st_a_b_c", 12)
    assert verify_stream_key(SECRET, key) == KeyClaim("st_a_b_c", 12)


def test_the_link_token_is_nginx_secure_link_md5() -> None:
    expected = base64.urlsafe_b64encode(hashlib.md5(b"2000000000/hls/st_1 s3cret").digest()).rstrip(b"=")
    assert link_token("s3cret", "/hls/st_1", 2_000_000_000) == expected.decode()


def test_playback_urls_sign_the_stream_directory_and_expire() -> None:
    url = playback_url("http://media:8080/hls/", SECRET, "st_1", ttl_s=60, now=1_000)
    token = link_token(SECRET, "/hls/st_1", 1_060)
    assert url == f"http://media:8080/hls/{token}/1060/st_1/index.m3u8"


def test_replay_urls_sign_one_file() -> None:
    url = recording_url("https://cdn.example/recordings", SECRET, "st_1/st_1-5.mp4", ttl_s=10, now=100)
    token = link_token(SECRET, "/recordings/st_1/st_1-5.mp4", 110)
    assert url == f"https://cdn.example/recordings/{token}/110/st_1/st_1-5.mp4"
