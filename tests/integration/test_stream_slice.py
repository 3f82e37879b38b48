"""The vertical slice over HTTP against the real stack: what the log says equals what readers see."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from harness import Api, eventually, uid
from sqlalchemy import Engine, text


def start(api: Api, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/streams", json={"title": "Hello", "category": "chat", **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_full_lifecycle_reaches_postgres_and_clickhouse(user: Callable[..., Api], pg: Engine) -> None:
    owner = user(uid("owner"), name="Olive")
    viewers = [user(uid("viewer"), name=f"V{i}") for i in range(3)]
    started = start(owner, tags=["music", "live"], language="fr", quality="720p")
    sid = started["streamId"]
    assert started["streamKey"].startswith("sk_") and started["ingestUrl"].startswith("rtmp://")
    assert started["playbackUrl"].endswith(f"/{sid}/index.m3u8")  # signed: /hls/{md5}/{expires}/...

    for i, viewer in enumerate(viewers):
        joined = viewer.post(f"/v1/streams/{sid}/viewers")
        assert joined.status_code == 200, joined.text
        assert joined.json()["viewerCount"] == i + 1
    beat = viewers[0].post(f"/v1/streams/{sid}/heartbeat")
    assert beat.status_code == 200 and beat.json()["viewerCount"] == 3
    comment = viewers[0].post(f"/v1/streams/{sid}/comments", json={"text": "  first!  "})
    assert comment.status_code == 201, comment.text
    assert comment.json()["text"] == "first!"
    assert viewers[1].post(f"/v1/streams/{sid}/likes", json={"count": 7}).json()["accepted"] == 7
    assert viewers[2].post(f"/v1/streams/{sid}/likes", json={"count": 3}).json()["likes"] == 10
    left = viewers[2].delete(f"/v1/streams/{sid}/viewers/me")
    assert left.status_code == 200 and left.json()["viewerCount"] == 2

    ended = owner.post(f"/v1/streams/{sid}/end")
    assert ended.status_code == 200, ended.text
    final = ended.json()
    assert (final["peakViewerCount"], final["totalViews"], final["likes"], final["comments"]) == (3, 3, 10, 1)

    def read_model_final() -> dict[str, Any]:
        doc = owner.get(f"/v1/streams/{sid}").json()
        assert doc["status"] == "ended"
        return doc

    doc = eventually(read_model_final)
    assert doc["streamKey"] == started["streamKey"]  # the owner sees the key ...
    public = viewers[0].get(f"/v1/streams/{sid}").json()
    assert "streamKey" not in public  # ... nobody else does
    assert (doc["viewerCount"], doc["peakViewerCount"], doc["totalViews"]) == (0, 3, 3)
    assert (doc["likes"], doc["comments"], doc["tags"], doc["language"]) == (10, 1, ["music", "live"], "fr")
    assert doc["duration"] == final["duration"]

    with pg.connect() as conn:
        viewer_rows = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE is_active), count(*) FROM stream_viewers WHERE stream_id = :s"
            ),
            {"s": sid},
        ).one()
        likes = dict(
            conn.execute(
                text("SELECT user_id, like_count FROM stream_likes WHERE stream_id = :s"), {"s": sid}
            ).all()
        )
    assert tuple(viewer_rows) == (0, 3)
    assert sorted(likes.values()) == [3, 7]

    comments = viewers[1].get(f"/v1/streams/{sid}/comments").json()["comments"]
    assert [c["text"] for c in comments] == ["first!"]

    def clickhouse_log() -> list[dict[str, Any]]:
        events = owner.get(f"/v1/streams/{sid}/log").json()["events"]
        assert events and events[-1]["type"] == "streams.StreamEnded"
        return events

    events = eventually(clickhouse_log)
    types = [e["type"] for e in events]
    assert types == [
        "streams.StreamStarted",
        "streams.ViewerJoined",
        "streams.ViewerJoined",
        "streams.ViewerJoined",
        "streams.HeartbeatsRecorded",
        "streams.CommentPosted",
        "streams.LikesRecorded",
        "streams.LikesRecorded",
        "streams.ViewerLeft",
        "streams.ViewerLeft",
        "streams.ViewerLeft",
        "streams.StreamEnded",
    ]
    assert [e["sequence"] for e in events] == list(range(1, 13))
    assert orjson.loads(events[-1]["payload"])["likes"] == 10


def test_one_active_stream_per_user_and_restart_after_end(user: Callable[..., Api]) -> None:
    owner = user(uid("owner"))
    first = start(owner)["streamId"]
    second = owner.post("/v1/streams", json={"title": "again", "category": "chat"})
    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["type"].endswith("/stream-already-active")
    assert owner.post(f"/v1/streams/{first}/end").status_code == 200
    third = eventually(lambda: start(owner))  # the slot is released by a follow-up command
    assert third["streamId"] != first


def test_idempotency_key_gives_one_effect(user: Callable[..., Api]) -> None:
    owner = user(uid("owner"))
    key = {"Idempotency-Key": uuid.uuid4().hex}
    a = owner.post("/v1/streams", json={"title": "x", "category": "chat"}, headers=key)
    b = owner.post("/v1/streams", json={"title": "x", "category": "chat"}, headers=key)
    assert a.status_code == b.status_code == 201
    # the same stream, the same answer; the playback URL is signed afresh for each response (a
    # token and an expiry: two answers a second apart differ there), for the same playlist
    first, again = a.json(), b.json()
    playlist = [answer.pop("playbackUrl").split("/")[-3:] for answer in (first, again)]
    assert first == again and playlist[0] == playlist[1]
    sid = first["streamId"]
    fan = user(uid("fan"))
    assert fan.post(f"/v1/streams/{sid}/viewers").status_code == 200
    like_key = {"Idempotency-Key": "tap-1"}
    assert fan.post(f"/v1/streams/{sid}/likes", json={"count": 5}, headers=like_key).json()["accepted"] == 5
    retry = fan.post(f"/v1/streams/{sid}/likes", json={"count": 5}, headers=like_key)
    assert retry.status_code == 200 and retry.json()["accepted"] == 0
    assert fan.post(f"/v1/streams/{sid}/likes", json={"count": 2}).json()["likes"] == 7
    comment_key = {"Idempotency-Key": "c-1"}
    c1 = fan.post(f"/v1/streams/{sid}/comments", json={"text": "once"}, headers=comment_key)
    c2 = fan.post(f"/v1/streams/{sid}/comments", json={"text": "once"}, headers=comment_key)
    assert c1.status_code == c2.status_code == 201  # the retry is not rate-limited: it is the same command
    assert c1.json()["commentId"] == c2.json()["commentId"]
    doc = eventually(lambda: _with(owner.get(f"/v1/streams/{sid}").json(), likes=7, comments=1))
    assert doc["likes"] == 7


def _with(doc: dict[str, Any], **expected: Any) -> dict[str, Any]:
    for key, value in expected.items():
        assert doc.get(key) == value, (key, doc.get(key), value)
    return doc


def test_refusals_are_problems(user: Callable[..., Api]) -> None:
    owner = user(uid("owner"))
    sid = start(owner, allowComments=False)["streamId"]
    fan = user(uid("fan"))
    refused = fan.post(f"/v1/streams/{sid}/comments", json={"text": "hello"})
    assert refused.status_code == 403 and refused.json()["type"].endswith("/comments-disabled")
    not_owner = fan.post(f"/v1/streams/{sid}/end")
    assert not_owner.status_code == 403 and not_owner.json()["type"].endswith("/not-stream-owner")
    not_watching = fan.delete(f"/v1/streams/{sid}/viewers/me")
    assert not_watching.status_code == 409 and not_watching.json()["type"].endswith("/not-watching")
    missing = fan.post("/v1/streams/st_doesnotexist/viewers")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/stream-not-found")
    assert owner.post(f"/v1/streams/{sid}/end").status_code == 200
    late = fan.post(f"/v1/streams/{sid}/viewers")
    assert late.status_code == 409 and late.json()["type"].endswith("/stream-not-live")


def test_comment_rate_limit(user: Callable[..., Api]) -> None:
    owner = user(uid("owner"))
    sid = start(owner)["streamId"]
    fan = user(uid("fan"))
    assert fan.post(f"/v1/streams/{sid}/comments", json={"text": "one"}).status_code == 201
    limited = fan.post(f"/v1/streams/{sid}/comments", json={"text": "two"})
    assert limited.status_code == 429 and limited.json()["type"].endswith("/rate-limited")
    assert owner.post(f"/v1/streams/{sid}/comments", json={"text": "host"}).status_code == 201


def test_discovery_orders_by_viewers_and_paginates(user: Callable[..., Api]) -> None:
    category = uid("cat")
    ids = []
    for audience in (0, 2, 1):
        owner = user(uid("owner"))
        sid = start(owner, category=category)["streamId"]
        ids.append(sid)
        for _ in range(audience):
            assert user(uid("v")).post(f"/v1/streams/{sid}/viewers").status_code == 200
    reader = user(uid("reader"))

    def ordered() -> list[str]:
        page = reader.get("/v1/streams", params={"category": category, "limit": 2}).json()
        assert page["nextCursor"] is not None, page
        rest = reader.get(
            "/v1/streams", params={"category": category, "limit": 2, "cursor": page["nextCursor"]}
        )
        got = [s["streamId"] for s in page["streams"] + rest.json()["streams"]]
        assert got == [ids[1], ids[2], ids[0]], got
        assert rest.json()["nextCursor"] is None
        return got

    eventually(ordered)
