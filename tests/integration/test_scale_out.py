"""Two Faust workers in one consumer group, one SIGKILLed under load, then a third joining (issue #20,
first part): the survivors take the dead worker's partitions within the session timeout, and the log
and the read models still hold exactly what the clients were told was accepted.

Runs on its own stack (`DevStack(workers=2)`), which also writes `<data dir>/processes.json`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from harness import Api, eventually, start_stack, uid
from sqlalchemy import create_engine, text
from test_crash_restart import read_log

from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scaled() -> Iterator[DevStack]:
    stack, cleanup = start_stack("scale", workers=2)
    try:
        yield stack
    finally:
        cleanup()


def processes(stack: DevStack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((stack.data_dir / "processes.json").read_text())
    return rows


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_processes_json_names_every_process(scaled: DevStack) -> None:
    rows = processes(scaled)
    roles = Counter(row["role"] for row in rows)
    assert roles == {"broker": 1, "postgres": 1, "worker": 2, "projector": 1, "api": 1}, rows
    assert sorted(row["index"] for row in rows if row["role"] == "worker") == [0, 1]
    assert all(alive(row["pid"]) for row in rows)
    api = next(row for row in rows if row["role"] == "api")
    assert api["port"] == scaled.api_port


def test_a_killed_worker_hands_its_partitions_over_and_nothing_is_lost(scaled: DevStack) -> None:
    settings = Settings()
    streams: list[str] = []
    owners = [Api(scaled.api_url, mint_token(settings, uid("owner"))) for _ in range(6)]
    for owner in owners:  # six streams: every partition of four has at least one, most likely
        response = owner.post("/v1/streams", json={"title": "scaled", "category": "chat"})
        assert response.status_code == 201, response.text
        streams.append(response.json()["streamId"])
    sent_likes: Counter[str] = Counter()
    sent_comments: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + 14.0

    def traffic(thread_no: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            sid = streams[(thread_no + n) % len(streams)]
            fan = Api(scaled.api_url, mint_token(settings, f"scale-fan-{thread_no}-{n}"))  # no rate limit
            if n % 4 == 0:
                response = fan.post(f"/v1/streams/{sid}/comments", json={"text": f"c{thread_no}-{n}"})
                with lock:
                    statuses[response.status_code] += 1
                    sent_comments[sid] += response.status_code in (201, 202)
                continue
            key = {"Idempotency-Key": f"scale-{thread_no}-{n}"}
            response = fan.post(f"/v1/streams/{sid}/likes", json={"count": 2}, headers=key)
            with lock:
                statuses[response.status_code] += 1
                sent_likes[sid] += 2 if response.status_code in (200, 202) else 0

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(traffic, t) for t in range(4)]
        time.sleep(3.0)
        killed_at = time.monotonic()
        scaled.kill("worker")  # its partitions go to worker-2 after the session timeout
        time.sleep(6.0)
        third = scaled.add_worker()  # and a newcomer takes a share again
        for future in futures:
            future.result()
    assert third == "worker-3" and {r["role"] for r in processes(scaled)} >= {"worker"}
    assert set(statuses) <= {200, 201, 202}, statuses

    # every stream decides again after the kill: a comment on each is accepted
    def each_stream_answers() -> None:
        for sid in streams:
            fan = Api(scaled.api_url, mint_token(settings, uid("late")))
            response = fan.post(f"/v1/streams/{sid}/comments", json={"text": "after"})
            assert response.status_code == 201, (sid, response.status_code, response.text)
            sent_comments[sid] += 1

    eventually(each_stream_answers, timeout=30, interval=1.0)
    taken_over_s = time.monotonic() - killed_at

    def log_matches_clients() -> None:
        by_position: dict[tuple[str, int], dict[str, Any]] = {}
        for record in read_log(scaled.broker):
            if record["aggregate_id"] in streams and record["sequence"] > 0:
                key = (record["aggregate_id"], record["sequence"])
                earlier = by_position.setdefault(key, record)
                assert earlier["event_id"] == record["event_id"], f"two different events at {key}"
        for sid in streams:
            sequences = sorted(seq for s, seq in by_position if s == sid)
            assert sequences == list(range(1, len(sequences) + 1)), f"gap in {sid}"
        likes: Counter[str] = Counter()
        comments: Counter[str] = Counter()
        for (sid, _), record in by_position.items():
            likes[sid] += record["payload"]["count"] if record["type"] == "streams.LikesRecorded" else 0
            comments[sid] += record["type"] == "streams.CommentPosted"
        assert (+likes, +comments) == (+sent_likes, +sent_comments)

    eventually(log_matches_clients, timeout=60, interval=1.0)
    engine = create_engine(scaled.postgres_dsn)

    def read_models_match() -> None:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT stream_id, likes, comments FROM live_streams WHERE stream_id = ANY(:s)"),
                {"s": streams},
            ).all()
        assert {r.stream_id: (r.likes, r.comments) for r in rows} == {
            sid: (sent_likes[sid], sent_comments[sid]) for sid in streams
        }

    eventually(read_models_match, timeout=60, interval=1.0)
    engine.dispose()
    assert taken_over_s < 40, f"the partitions of the killed worker took {taken_over_s:.1f} s to move"
