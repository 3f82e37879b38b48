"""Kill the worker (twice) and the projector mid-traffic (SIGKILL), restart them, and prove the log
and the read models equal what the clients were told: nothing lost, nothing counted twice."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from harness import LOAD_TEST_LIMITS, Api, eventually, start_stack
from sqlalchemy import create_engine, text

from spaktok.api.auth import mint_token
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings


@pytest.fixture(scope="module")
def crash_stack() -> Iterator[DevStack]:
    stack, cleanup = start_stack("crash", env=LOAD_TEST_LIMITS)
    try:
        yield stack
    finally:
        cleanup()


def read_log(broker: str, topic: str = topics.EVENTS_STREAMS.name, idle: float = 2.0) -> list[dict[str, Any]]:
    """Every record of a topic (by default the stream events), from the beginning until it goes quiet.

    Not bounded by the watermark: the dev broker reports a stale high watermark (the last batch's base
    offset), so reading "up to the end" would silently stop one batch short."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"audit-{uuid.uuid4().hex}"})
    metadata = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.topics[topic].partitions])
    records: list[dict[str, Any]] = []
    while (msg := consumer.poll(idle)) is not None:
        if msg.error() is None:
            records.append(orjson.loads(msg.value()))
    consumer.close()
    return records


def test_kill_worker_and_projector_mid_traffic(crash_stack: DevStack) -> None:
    stack = crash_stack
    settings = Settings()

    def client(user_id: str) -> Api:
        return Api(stack.api_url, mint_token(settings, user_id))

    streams = []
    for i in range(3):
        owner = client(f"crash-owner-{i}")
        response = owner.post("/v1/streams", json={"title": f"crash {i}", "category": "chat"})
        assert response.status_code == 201, response.text
        streams.append(response.json()["streamId"])
    viewers = {sid: [client(f"crash-viewer-{sid[-4:]}-{n}") for n in range(8)] for sid in streams}
    for sid, clients in viewers.items():
        for viewer in clients:
            # 202: decided later than the API waits (a loaded machine); the join still happens
            assert viewer.post(f"/v1/streams/{sid}/viewers").status_code in (200, 202)

    sent_likes: Counter[str] = Counter()
    sent_comments: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    rng = random.Random(7)
    stop_at = time.monotonic() + 9.0

    def traffic(worker_no: int) -> None:
        local = random.Random(worker_no)
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            sid = local.choice(streams)
            viewer = local.choice(viewers[sid])
            if n % 10 == 0:
                commenter = client(f"crash-commenter-{worker_no}-{n}")  # fresh user: no rate limit
                response = commenter.post(f"/v1/streams/{sid}/comments", json={"text": f"c{n}"})
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code in (201, 202):
                        sent_comments[sid] += 1
                continue
            if n % 7 == 0:
                response = viewer.post(f"/v1/streams/{sid}/heartbeat")
                with lock:
                    statuses[response.status_code] += 1
                continue
            count = local.randint(1, 5)
            key = {"Idempotency-Key": f"{worker_no}-{n}"}
            response = viewer.post(f"/v1/streams/{sid}/likes", json={"count": count}, headers=key)
            with lock:
                statuses[response.status_code] += 1
                if response.status_code in (200, 202):
                    sent_likes[sid] += count

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(traffic, w) for w in range(6)]
        time.sleep(1.5 + rng.random())
        stack.kill("worker")
        time.sleep(1.0)
        stack.kill("projector")
        time.sleep(1.0)
        stack.start_worker()
        time.sleep(0.5)
        stack.start_projector()
        time.sleep(1.0)
        stack.kill("worker")  # a second crash, soon after the first recovery
        time.sleep(0.5)
        stack.start_worker()
        for future in futures:
            future.result()

    assert set(statuses) <= {200, 201, 202}, statuses
    assert statuses[202] > 0, "the outage should have left some commands undecided within the wait"

    # first the log (the worker's work): gap-free sequences, re-emitted duplicates identical to the
    # original, and exactly the likes and comments the clients were told were accepted
    by_position: dict[tuple[str, int], dict[str, Any]] = {}

    def log_matches_clients() -> None:
        by_position.clear()
        conflicts = []
        for record in read_log(stack.broker):
            if record["aggregate_id"] not in streams or record["sequence"] == 0:
                continue
            key = (record["aggregate_id"], record["sequence"])
            if key in by_position and by_position[key]["event_id"] != record["event_id"]:
                conflicts.append((key, by_position[key]["type"], record["type"]))
            by_position.setdefault(key, record)
        assert conflicts == [], f"two different events at one position: {conflicts[:5]}"
        for sid in streams:
            sequences = sorted(seq for s, seq in by_position if s == sid)
            assert sequences == list(range(1, len(sequences) + 1)), f"gap in {sid}"
        log_likes: Counter[str] = Counter()
        log_comments: Counter[str] = Counter()
        for (sid, _), record in by_position.items():
            if record["type"] == "streams.LikesRecorded":
                log_likes[sid] += record["payload"]["count"]
            if record["type"] == "streams.CommentPosted":
                log_comments[sid] += 1
        assert (log_likes, log_comments) == (sent_likes, sent_comments)

    eventually(log_matches_clients, timeout=60, interval=1.0)

    # then the read models (the projector's work)
    engine = create_engine(stack.postgres_dsn)

    def read_models_match_clients() -> None:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT stream_id, likes, comments, viewer_count FROM live_streams"
                    " WHERE stream_id = ANY(:s)"
                ),
                {"s": streams},
            ).all()
            per_user = dict(
                conn.execute(
                    text(
                        "SELECT stream_id, sum(like_count) FROM stream_likes"
                        " WHERE stream_id = ANY(:s) GROUP BY 1"
                    ),
                    {"s": streams},
                ).all()
            )
        got = {sid: (likes, comments, viewers_) for sid, likes, comments, viewers_ in rows}
        want = {sid: (sent_likes[sid], sent_comments[sid], 8) for sid in streams}
        assert got == want
        assert {sid: int(per_user[sid]) for sid in streams} == {sid: sent_likes[sid] for sid in streams}

    eventually(read_models_match_clients, timeout=60, interval=0.5)

    # ClickHouse holds each event exactly once, the same ones as the log
    owner = client("crash-owner-0")
    for i, sid in enumerate(streams):
        owner = client(f"crash-owner-{i}")
        expected = sorted(seq for s, seq in by_position if s == sid)

        def clickhouse_complete(sid: str = sid, owner: Api = owner, expected: list[int] = expected) -> None:
            events = owner.get(f"/v1/streams/{sid}/log", params={"limit": 10000}).json()["events"]
            assert [e["sequence"] for e in events] == expected

        eventually(clickhouse_complete, timeout=60, interval=0.5)
    engine.dispose()
