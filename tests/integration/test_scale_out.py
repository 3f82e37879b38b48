"""Two workers, two projectors and two API processes on one log (issue #20): traffic of every kind
through both APIs with feed subscribers on both, one worker and one projector SIGKILLed mid-load, then a
third worker joining. The survivors take the dead processes' partitions within the session timeout, and
the log, the read models and every subscriber's feed hold exactly what the clients were told.

Runs on its own stack (`DevStack(workers=2, projectors=2, apis=2)`), which also writes
`<data dir>/processes.json`.
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
from test_live_feed import Feed
from websockets.sync.client import connect

from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scaled() -> Iterator[DevStack]:
    stack, cleanup = start_stack("scale", workers=2, projectors=2, apis=2)
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
    assert roles == {"broker": 1, "postgres": 1, "worker": 2, "projector": 2, "api": 2}, rows
    for role in ("worker", "projector", "api"):
        assert sorted(row["index"] for row in rows if row["role"] == role) == [0, 1]
    assert all(alive(row["pid"]) for row in rows)
    api_ports = [row["port"] for row in sorted(rows, key=lambda r: r["index"]) if row["role"] == "api"]
    assert [f"http://127.0.0.1:{port}" for port in api_ports] == scaled.api_urls()
    assert scaled.api_port not in api_ports  # the shared port is the stack's; each has its own too


def test_the_shared_port_reaches_every_api_and_analytics_answer_on_each(scaled: DevStack) -> None:
    settings = Settings()
    admin_token = mint_token(settings, uid("admin"), roles=["admin"])
    owner = Api(scaled.api_url, mint_token(settings, uid("owner")))
    response = owner.post("/v1/streams", json={"title": "shared port", "category": "chat"})
    assert response.status_code == 201, response.text
    sid = response.json()["streamId"]
    feeds = [subscribe(scaled.api_url, sid) for _ in range(16)]  # the kernel spreads new connections
    try:
        per_process = [live_connections(url, admin_token) for url in scaled.api_urls()]
        assert sum(per_process) >= 16 and all(n > 0 for n in per_process), per_process
    finally:
        for feed in feeds:
            feed.conn.close()
    for url in scaled.api_urls():  # the second API forwards its ClickHouse routes to the first
        response = Api(url, admin_token).get("/v1/admin/metrics")
        assert response.status_code == 200, (url, response.text)
        assert "window" in response.json()
        answer = Api(url, admin_token).post("/v1/admin/sql", json={"sql": "SELECT 1 AS one"})
        assert answer.status_code == 200 and answer.json()["rows"] == [[1]], (url, answer.text)


def live_connections(api_url: str, admin_token: str) -> int:
    """This one process's open feed connections, from its own /metrics (not forwarded)."""
    metrics = Api(api_url, admin_token).get("/metrics")
    assert metrics.status_code == 200, metrics.text
    line = next(ln for ln in metrics.text.splitlines() if ln.startswith("spaktok_live_connections "))
    return int(float(line.split()[1]))


def test_a_killed_worker_and_projector_hand_over_and_nothing_is_lost(scaled: DevStack) -> None:
    settings = Settings()
    apis = scaled.api_urls()
    admin = Api(apis[0], mint_token(settings, uid("admin"), roles=["admin"]))
    streams: list[str] = []
    for n in range(6):  # six streams: every partition of four has at least one, most likely
        owner = Api(apis[n % 2], mint_token(settings, uid("owner")))
        response = owner.post("/v1/streams", json={"title": "scaled", "category": "chat"})
        assert response.status_code == 201, response.text
        streams.append(response.json()["streamId"])
    gifters = [uid("gifter") for _ in range(4)]
    for gifter in gifters:
        body = {"userId": gifter, "coins": 10_000, "paymentRef": uid("pay")}
        assert admin.post("/v1/wallet/purchases", json=body).status_code in (200, 201)
    feeds = [subscribe(api, sid) for sid in streams for api in apis]  # every stream watched on both APIs
    sent = Counter[tuple[str, str]]()  # (stream, kind) -> accepted count (likes: taps)
    gift_answers: Counter[int] = Counter()
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + 14.0

    def traffic(thread_no: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            sid = streams[(thread_no + n) % len(streams)]
            base = apis[(thread_no + n) % 2]  # each thread's requests alternate between the two APIs
            if n % 5 == 0:
                gifter = Api(base, mint_token(settings, gifters[thread_no]))
                response = gifter.post(f"/v1/streams/{sid}/gifts", json={"giftId": "rose"})
                with lock:
                    statuses[response.status_code] += 1
                    gift_answers[response.status_code] += 1
                continue
            fan = Api(base, mint_token(settings, f"scale-fan-{thread_no}-{n}"))  # no rate limit
            if n % 5 == 1:
                response = fan.post(f"/v1/streams/{sid}/viewers")
                with lock:
                    statuses[response.status_code] += 1
                continue
            if n % 5 == 2:
                response = fan.post(f"/v1/streams/{sid}/comments", json={"text": f"c{thread_no}-{n}"})
                with lock:
                    statuses[response.status_code] += 1
                    sent[sid, "comments"] += response.status_code in (201, 202)
                continue
            key = {"Idempotency-Key": f"scale-{thread_no}-{n}"}
            response = fan.post(f"/v1/streams/{sid}/likes", json={"count": 2}, headers=key)
            with lock:
                statuses[response.status_code] += 1
                sent[sid, "likes"] += 2 if response.status_code in (200, 202) else 0

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(traffic, t) for t in range(4)]
        time.sleep(3.0)
        killed_at = time.monotonic()
        scaled.kill("worker")  # its partitions go to worker-2 after the session timeout
        scaled.kill("projector")  # and its partitions to projector-2
        time.sleep(6.0)
        third = scaled.add_worker()  # and a newcomer takes a share again
        for future in futures:
            future.result()
    assert third == "worker-3"
    assert set(statuses) <= {200, 201, 202}, statuses

    # every stream decides again after the kills: a comment on each is accepted, through either API
    deciding = set(streams)

    def each_stream_answers() -> None:
        for n, sid in enumerate(streams):
            if sid not in deciding:
                continue
            fan = Api(apis[n % 2], mint_token(settings, uid("late")))
            response = fan.post(f"/v1/streams/{sid}/comments", json={"text": "after"})
            sent[sid, "comments"] += response.status_code in (201, 202)  # a 202 is decided later
            assert response.status_code == 201, (sid, response.status_code, response.text)
            deciding.discard(sid)

    eventually(each_stream_answers, timeout=30, interval=1.0)
    taken_over_s = time.monotonic() - killed_at
    logged = eventually(lambda: log_matches_clients(scaled, streams, sent, gift_answers), 60, 1.0)
    eventually(lambda: read_models_match(scaled, logged), timeout=60, interval=1.0)
    for feed in feeds:  # every subscriber, on either API, got every comment of its stream in log order
        eventually(lambda feed=feed: feed_matches_log(feed, logged), timeout=30, interval=0.5)
        feed.conn.close()
    assert taken_over_s < 40, f"the partitions of the killed worker took {taken_over_s:.1f} s to move"


class StreamFeed(Feed):
    def __init__(self, conn: Any, stream_id: str) -> None:
        super().__init__(conn)
        self.stream_id = stream_id


def subscribe(api_url: str, stream_id: str) -> StreamFeed:
    token = mint_token(Settings(), uid("watcher"))

    def readable() -> None:
        assert Api(api_url, token).get(f"/v1/streams/{stream_id}").status_code == 200

    eventually(readable, timeout=20, interval=0.1)
    url = f"{api_url.replace('http://', 'ws://')}/v1/streams/{stream_id}/live?access_token={token}"
    conn = connect(url, open_timeout=10).__enter__()  # closed by the test (feed.conn.close())
    feed = StreamFeed(conn, stream_id)
    feed.until(lambda items: len(items) > 0)  # subscribed: the first frame (the stream's state) came
    return feed


def log_matches_clients(
    stack: DevStack, streams: list[str], sent: Counter[tuple[str, str]], gift_answers: Counter[int]
) -> dict[str, list[dict[str, Any]]]:
    """Each stream's events by position, gap-free with one event per position; as many likes and
    comments as the clients were told were accepted, and every gift answered 200 (a 202's may be)."""
    by_position: dict[tuple[str, int], dict[str, Any]] = {}
    for record in read_log(stack.broker):
        if record["aggregate_id"] in streams and record["sequence"] > 0:
            key = (record["aggregate_id"], record["sequence"])
            earlier = by_position.setdefault(key, record)
            assert earlier["event_id"] == record["event_id"], f"two different events at {key}"
    logged = {
        sid: [by_position[sid, seq] for seq in sorted(q for s, q in by_position if s == sid)]
        for sid in streams
    }
    for sid, events in logged.items():
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1)), f"gap in {sid}"
    counted = Counter[tuple[str, str]]()
    gifts = 0
    for sid, events in logged.items():
        for e in events:
            counted[sid, "likes"] += e["payload"]["count"] if e["type"] == "streams.LikesRecorded" else 0
            counted[sid, "comments"] += e["type"] == "streams.CommentPosted"
            gifts += e["type"] == "streams.GiftReceived"
    assert +counted == +sent
    assert gift_answers[200] <= gifts <= gift_answers[200] + gift_answers[202], (gifts, gift_answers)
    return logged


def read_models_match(stack: DevStack, logged: dict[str, list[dict[str, Any]]]) -> None:
    """The Postgres rows, written by two projectors (one killed), equal the log's last totals."""
    expected = {}
    for sid, events in logged.items():
        likes = sum(e["payload"]["count"] for e in events if e["type"] == "streams.LikesRecorded")
        comments = sum(e["type"] == "streams.CommentPosted" for e in events)
        gifts = [e["payload"] for e in events if e["type"] == "streams.GiftReceived"]
        viewers = [e["payload"]["viewer_count"] for e in events if "viewer_count" in e["payload"]]
        revenue = sum(g["coin_cost"] for g in gifts)
        expected[sid] = (likes, comments, len(gifts), revenue, viewers[-1] if viewers else 0)
    engine = create_engine(stack.postgres_dsn)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT stream_id, likes, comments, gifts, gift_revenue, viewer_count FROM live_streams "
                    "WHERE stream_id = ANY(:s)"
                ),
                {"s": list(logged)},
            ).all()
    finally:
        engine.dispose()
    assert {r.stream_id: tuple(r)[1:] for r in rows} == expected


def feed_matches_log(feed: StreamFeed, logged: dict[str, list[dict[str, Any]]]) -> None:
    wanted = [
        e["payload"]["comment_id"] for e in logged[feed.stream_id] if e["type"] == "streams.CommentPosted"
    ]
    assert [c["commentId"] for c in feed.of("comment")] == wanted
