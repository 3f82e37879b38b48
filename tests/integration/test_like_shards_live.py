"""A hot stream's likes counted by its shards (commands/stream_shards.py), on a stack of its own whose
streams open with four like shards (`SPAKTOK_STREAM_LIKE_SHARDS=4`) and two workers, so the shards of
one stream are decided by different processes.

What the clients were told was accepted is exactly what the log's shards counted, the stream's
folded total, the read models (the document, who liked how much), the live feed and ClickHouse.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from harness import Api, eventually, problem, start_stack, uid
from sqlalchemy import create_engine, text
from test_crash_restart import read_log
from test_scale_out import subscribe

from spaktok.api.auth import mint_token
from spaktok.commands.stream_shards import shard_of
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

pytestmark = pytest.mark.integration

SHARDS = 4


@pytest.fixture(scope="module")
def sharded() -> Iterator[DevStack]:
    stack, cleanup = start_stack("shards", env={"SPAKTOK_STREAM_LIKE_SHARDS": str(SHARDS)}, workers=2)
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
        first = api.post(f"/v1/streams/{sid}/likes", json={"count": 1 + n % 3}, headers=key)
        assert first.status_code == 200, first.text
        retry = api.post(f"/v1/streams/{sid}/likes", json={"count": 1 + n % 3}, headers=key)
        assert retry.status_code == 200 and retry.json()["accepted"] == 0, retry.text  # counted once
        with lock:
            accepted[fan] += first.json()["accepted"]

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
