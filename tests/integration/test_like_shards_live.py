"""A hot stream's likes and presence kept by its shards (commands/stream_shards.py), on a stack of its
own whose streams open with four shards (`SPAKTOK_STREAM_LIKE_SHARDS=4`) and two workers, so the
shards of one stream are decided by different processes.

Likes: what the clients were told was accepted is exactly what the log's shards counted, the
stream's folded total, the read models (the document, who liked how much), the live feed and
ClickHouse. Presence: viewers who heartbeat stay, silent ones are timed out by their shard (viewer
timeout 10 s, sweeps every second), and the beats reach the read model and ClickHouse's watch time.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from harness import Api, eventually, problem, start_stack, uid
from sqlalchemy import create_engine, text
from test_crash_restart import read_log
from test_replay import wait_until_projected
from test_scale_out import subscribe

from spaktok.api.auth import mint_token
from spaktok.commands.stream_shards import shard_of
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

pytestmark = pytest.mark.integration

SHARDS = 4
VIEWER_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def sharded() -> Iterator[DevStack]:
    env = {
        "SPAKTOK_STREAM_LIKE_SHARDS": str(SHARDS),
        "SPAKTOK_VIEWER_TIMEOUT_S": str(VIEWER_TIMEOUT_S),
        "SPAKTOK_VIEWER_SWEEP_INTERVAL_S": "1",
    }
    stack, cleanup = start_stack("shards", env=env, workers=2)
    try:
        yield stack
    finally:
        cleanup()


def test_likes_of_a_sharded_stream_are_counted_once_and_folded_everywhere(sharded: DevStack) -> None:
    settings = Settings()
    host_id = uid("host")
    host = Api(sharded.api_url, mint_token(settings, host_id))
    response = host.post("/v1/streams", json={"title": "hot", "category": "chat"})
    assert response.status_code == 201, response.text
    sid = response.json()["streamId"]
    feed = subscribe(sharded.api_url, sid)
    assert host.get(f"/v1/streams/{sid}").json()["likeShards"] == SHARDS
    fans = [uid("fan") for _ in range(24)]
    assert len({shard_of(fan, SHARDS) for fan in fans}) == SHARDS  # every shard has likers
    for fan in fans[:4]:  # four of them watch too: engaged viewers are those who joined and liked
        joined = Api(sharded.api_url, mint_token(settings, fan)).post(f"/v1/streams/{sid}/viewers")
        assert joined.status_code == 200, joined.text
    accepted: Counter[str] = Counter()
    lock = threading.Lock()

    def like(n: int) -> None:
        fan = fans[n % len(fans)]
        api = Api(sharded.api_url, mint_token(settings, fan))
        key = {"Idempotency-Key": f"{sid}-{n}"}
        taps = 1 + n % 3
        first = api.post(f"/v1/streams/{sid}/likes", json={"count": taps}, headers=key)
        retry = api.post(f"/v1/streams/{sid}/likes", json={"count": taps}, headers=key)
        assert {first.status_code, retry.status_code} <= {200, 202}, (first.text, retry.text)
        if first.status_code == retry.status_code == 200:  # both decided: exactly one of them counted
            assert first.json()["accepted"] + retry.json()["accepted"] == taps, (first.text, retry.text)
        with lock:  # a 202 is decided later: the action counts once either way
            accepted[fan] += taps

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(like, range(120)))
    total = sum(accepted.values())
    assert total == sum(1 + n % 3 for n in range(120))

    def folded_into_the_document() -> None:
        assert host.get(f"/v1/streams/{sid}").json()["likes"] == total

    eventually(folded_into_the_document, timeout=30, interval=0.2)
    feed.until(lambda items: any(i["type"] == "likes" and i["totalLikes"] == total for i in items))
    assert sum(i["count"] for i in feed.of("likes")) == total
    feed.conn.close()

    ended = host.post(f"/v1/streams/{sid}/end")
    assert ended.status_code == 200, ended.text
    late = Api(sharded.api_url, mint_token(settings, fans[0]))
    eventually(
        lambda: problem(late.post(f"/v1/streams/{sid}/likes", json={"count": 1}), 409, "stream-not-live")
    )

    shard_counts = eventually(lambda: log_counts(sharded, sid, total), timeout=30, interval=1.0)
    assert set(shard_counts) == set(range(SHARDS))
    eventually(lambda: likers_match(sharded, sid, accepted), timeout=30, interval=0.5)
    eventually(lambda: analytics_match(host, sid, total), timeout=30, interval=0.5)


def log_counts(stack: DevStack, sid: str, total: int) -> dict[int, int]:
    """Per shard: the likes its events counted; their sum is the stream's folded total, and every
    shard was closed by the end."""
    shard_events = [
        e
        for e in read_log(stack.broker, topics.EVENTS_STREAM_SHARDS.name)
        if e["payload"].get("stream_id") == sid
    ]
    counted: Counter[int] = Counter()
    for e in shard_events:
        if e["type"] == "stream_shards.ShardLikesRecorded":
            counted[e["payload"]["shard"]] += e["payload"]["count"]
    closed = {e["payload"]["shard"] for e in shard_events if e["type"] == "stream_shards.ShardClosed"}
    assert closed == set(range(SHARDS))
    stream = [e for e in read_log(stack.broker) if e["aggregate_id"] == sid]
    folds = [e for e in stream if e["type"] == "streams.ShardLikesFolded"]
    assert sum(counted.values()) == total == sum(f["payload"]["count"] for f in folds)
    assert folds[-1]["payload"]["total_likes"] == total
    assert not [e for e in stream if e["type"] == "streams.LikesRecorded"]  # the stream counted none itself
    return dict(counted)


def likers_match(stack: DevStack, sid: str, accepted: Counter[str]) -> None:
    engine = create_engine(stack.postgres_dsn)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT user_id, like_count FROM stream_likes WHERE stream_id = :s"), {"s": sid}
            ).all()
    finally:
        engine.dispose()
    assert dict(rows) == dict(accepted)


def analytics_match(host: Api, sid: str, total: int) -> None:
    body: dict[str, Any] = host.get(f"/v1/streams/{sid}/analytics").json()
    assert body["totals"]["likes"] == total, body.get("totals")
    assert sum(m["likes"] for m in body["viewerTimeline"]) == total
    assert body["engagement"]["engagedViewers"] == 4  # the viewers who liked, found in the shards' events


def test_a_sharded_streams_viewers_heartbeat_to_their_shards_and_the_silent_ones_time_out(
    sharded: DevStack,
) -> None:
    settings = Settings()
    host_id = uid("host")
    host = Api(sharded.api_url, mint_token(settings, host_id))
    response = host.post("/v1/streams", json={"title": "hot presence", "category": "chat"})
    assert response.status_code == 201, response.text
    sid = response.json()["streamId"]
    fans = fans_on_every_shard(8)
    apis = {fan: Api(sharded.api_url, mint_token(settings, fan)) for fan in fans}
    for fan in fans:
        joined = apis[fan].post(f"/v1/streams/{sid}/viewers")
        assert joined.status_code == 200, joined.text
    beating, silent = fans[:4], fans[4:]
    problem(
        Api(sharded.api_url, mint_token(settings, uid("stranger"))).post(f"/v1/streams/{sid}/heartbeat"),
        409,
        "not-watching",
    )

    def beat(fan: str) -> dict[str, Any]:
        answer = apis[fan].post(f"/v1/streams/{sid}/heartbeat")
        assert answer.status_code == 200, answer.text  # the shard knows its viewer (join forwarded)
        return dict(answer.json())

    first = eventually(lambda: [beat(fan) for fan in beating], timeout=10, interval=0.2)
    assert all(b["playbackUrl"] and b["status"] == "live" and b["viewerCount"] is not None for b in first)
    analyst = Api(sharded.api_url, mint_token(settings, uid("analyst"), roles=["analyst"]))
    began = time.monotonic()

    def still_watching_and_seen_everywhere() -> None:
        """While the beating viewers are still watching (their visits running): the silent ones left,
        and the beats reached the read model and ClickHouse (watch time, the per-minute beats)."""
        assert time.monotonic() - began > VIEWER_TIMEOUT_S
        assert host.get(f"/v1/streams/{sid}").json()["viewerCount"] == len(beating)
        beats_projected(sharded, sid, beating)
        watched(host, sid, len(beating) * VIEWER_TIMEOUT_S)
        minutes_count_beats(analyst, sid, len(beating) * 5)

    deadline = began + VIEWER_TIMEOUT_S + 45
    while True:  # the host beats too: the stream keeps the broadcaster's
        for fan in beating:
            beat(fan)
        assert host.post(f"/v1/streams/{sid}/heartbeat").status_code == 200
        try:
            still_watching_and_seen_everywhere()
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(1.5)
    left = {
        e["payload"]["user_id"]: e["payload"]
        for e in stream_log(sharded, sid)
        if e["type"] == "streams.ViewerLeft"
    }
    assert set(left) == set(silent) and all(p["reason"] == "timed_out" for p in left.values())
    assert all(p["watch_time"] <= 1 for p in left.values())  # to their last sign of life: the join
    problem(apis[silent[0]].post(f"/v1/streams/{sid}/heartbeat"), 409, "not-watching")
    assert apis[silent[0]].post(f"/v1/streams/{sid}/viewers").status_code == 200  # back: beats count again
    eventually(lambda: beat(silent[0]), timeout=10, interval=0.2)
    assert host.post(f"/v1/streams/{sid}/end").status_code == 200
    eventually(lambda: shards_timed_out_and_closed(sharded, sid, silent), timeout=30, interval=1.0)


def fans_on_every_shard(count: int) -> list[str]:
    """`count` new users, the first `SHARDS` of them one per shard, and again for the rest."""
    fans: list[str] = []
    while len(fans) < count:
        fan = uid("fan")
        if shard_of(fan, SHARDS) == len(fans) % SHARDS:
            fans.append(fan)
    return fans


def stream_log(stack: DevStack, sid: str) -> list[dict[str, Any]]:
    return [e for e in read_log(stack.broker) if e["aggregate_id"] == sid and e["sequence"] > 0]


def beats_projected(stack: DevStack, sid: str, beating: list[str]) -> None:
    """The read model has each beating viewer's last heartbeat well after their join."""
    engine = create_engine(stack.postgres_dsn)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT user_id, EXTRACT(EPOCH FROM last_heartbeat - joined_at) FROM stream_viewers "
                    "WHERE stream_id = :s AND is_active"
                ),
                {"s": sid},
            ).all()
    finally:
        engine.dispose()
    spans = {user: float(span) for user, span in rows}
    assert all(spans.get(fan, 0.0) >= VIEWER_TIMEOUT_S for fan in beating), spans


def watched(host: Api, sid: str, at_least: int) -> None:
    """ClickHouse's watch time holds the beating viewers' running visits, to their last beat."""
    body: dict[str, Any] = host.get(f"/v1/streams/{sid}/analytics").json()
    assert body["totalWatchTimeSeconds"] >= at_least, body["totalWatchTimeSeconds"]


def minutes_count_beats(analyst: Api, sid: str, at_least: int) -> None:
    """The per-minute table counts the beats the shards took (analysts read it with SQL)."""
    query = f"SELECT sum(heartbeats) AS beats FROM stream_minute_metrics WHERE stream_id = '{sid}'"
    answer = analyst.post("/v1/admin/sql", json={"sql": query}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert int(answer.json()["rows"][0][0] or 0) >= at_least, answer.text


def shards_timed_out_and_closed(stack: DevStack, sid: str, silent: list[str]) -> None:
    """The silent viewers were timed out by their shards, each visit once (the others may have timed
    out since they stopped beating), and the end closed every shard."""
    shard_events = [
        e
        for e in read_log(stack.broker, topics.EVENTS_STREAM_SHARDS.name)
        if e["payload"].get("stream_id") == sid
    ]
    visits = [
        (user, tuple(visit))
        for e in shard_events
        if e["type"] == "stream_shards.ShardViewersTimedOut"
        for user, visit in e["payload"]["visits"].items()
    ]
    assert len(visits) == len(set(visits)) and set(silent) <= {user for user, _ in visits}, visits
    closed = {e["payload"]["shard"] for e in shard_events if e["type"] == "stream_shards.ShardClosed"}
    assert closed == set(range(SHARDS))


def test_the_read_models_of_sharded_streams_replay_equal_from_the_log(sharded: DevStack) -> None:
    """After the tests above (likes, heartbeats and time-outs of sharded streams): `spaktok replay`
    folds the log, shards' events included, into Postgres and ClickHouse tables equal to the live ones."""
    pg = create_engine(sharded.postgres_dsn)
    try:
        wait_until_projected(pg)
    finally:
        pg.dispose()
    admin = mint_token(Settings(), uid("admin"), roles=["admin"])
    command = [
        sys.executable,
        "-m",
        "spaktok.cli",
        "replay",
        "--verify",
        "--api",
        sharded.api_url,
        "--token",
        admin,
    ]
    done = subprocess.run(
        command, env={**sharded.env(), "COLUMNS": "200"}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every table equals the live one" in done.stdout
    assert "ClickHouse: every table equals the one it replaced" in done.stdout
