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
    viewer_tag,
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


def test_playback_urls_sign_the_stream_directory_and_the_viewer_and_expire() -> None:
    url = playback_url("http://media:8080/hls/", SECRET, "st_1", ttl_s=60, now=1_000, viewer_id="ann")
    tag = viewer_tag("ann")
    token = link_token(SECRET, "/hls/st_1", 1_060, tag)
    assert url == f"http://media:8080/hls/{token}/1060/{tag}/st_1/index.m3u8"
    expected = base64.urlsafe_b64encode(hashlib.md5(f"1060/hls/st_1 {tag} {SECRET}".encode()).digest())
    assert token == expected.rstrip(b"=").decode()  # nginx: "$sl_expires/hls/$sl_stream $sl_viewer secret"


def test_a_playback_url_of_another_viewer_has_another_token() -> None:
    ann = playback_url("http://media:8080/hls", SECRET, "st_1", ttl_s=60, now=1_000, viewer_id="ann")
    bob = playback_url("http://media:8080/hls", SECRET, "st_1", ttl_s=60, now=1_000, viewer_id="bob")
    ann_token, bob_token = ann.split("/")[4], bob.split("/")[4]
    assert ann_token != bob_token
    # bob's viewer segment with ann's token is not a URL we issued: nginx recomputes bob's token
    assert ann.replace(viewer_tag("ann"), viewer_tag("bob")) != bob


def test_viewer_tags_are_one_url_safe_path_segment_for_any_user_id() -> None:
    for user_id in ("ann", "user@example.com", "ü/../x y", "x" * 128):
        tag = viewer_tag(user_id)
        assert tag and len(tag) <= 172 and all(c.isalnum() or c in "-_" for c in tag)
        assert base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4)).decode() == user_id


def test_replay_urls_sign_one_file() -> None:
    url = recording_url("https://cdn.example/recordings", SECRET, "st_1/st_1-5.mp4", ttl_s=10, now=100)
    token = link_token(SECRET, "/recordings/st_1/st_1-5.mp4", 110)
    assert url == f"https://cdn.example/recordings/{token}/110/st_1/st_1-5.mp4"
