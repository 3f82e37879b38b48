"""The feed's fan-out (api/live.py): writes without a task per subscriber, a slow client's bounded
backlog, order, the closing marker, and frames sent on arrival but at most one per gap."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from spaktok.api.live import CLOSED, FeedHub, StreamFeed, Subscription, send_now
from spaktok.settings import Settings


class Socket:
    """A client socket: writes complete at once unless `stuck`, then they wait until released."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closed_with: str | None = None
        self.stuck = False
        self.released = asyncio.Event()
        self.fail = False

    async def send(self, frame: str) -> None:
        if self.fail:
            raise RuntimeError("the client left")
        if self.stuck:
            await self.released.wait()
        self.frames.append(frame)

    async def close(self, sub: Subscription) -> None:
        self.closed_with = sub.reason


def attached(max_frames: int = 4) -> tuple[Subscription, Socket]:
    sub, socket = Subscription("st_1", max_frames), Socket()
    sub.attach(socket.send, socket.close)
    return sub, socket


async def test_send_now_runs_a_coroutine_that_does_not_wait_to_its_end_without_a_task() -> None:
    done: list[int] = []

    async def write() -> None:
        done.append(1)

    assert send_now(write()) is None and done == [1]


async def test_send_now_hands_a_coroutine_that_waits_to_a_task() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done: list[str] = []

    async def write() -> None:
        done.append("started")
        await gate
        await asyncio.sleep(0)  # a bare yield after the first wait
        done.append("finished")

    task = send_now(write())
    assert task is not None and done == ["started"]
    gate.set_result(None)
    await task
    assert done == ["started", "finished"]


async def test_send_now_passes_cancellation_into_the_waiting_coroutine() -> None:
    cleaned: list[bool] = []

    async def write() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            cleaned.append(True)

    task = send_now(write())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert cleaned == [True]


async def test_frames_are_written_as_offered() -> None:
    sub, socket = attached()
    assert sub.offer("[1]") and sub.offer("[2]")
    assert socket.frames == ["[1]", "[2]"]


async def test_frames_offered_before_attaching_go_first_in_order() -> None:
    sub, socket = Subscription("st_1", 4), Socket()
    sub.offer("[1]")
    sub.attach(socket.send, socket.close)
    sub.offer("[2]")  # behind the backlog, not before it
    await asyncio.sleep(0.01)
    assert socket.frames == ["[1]", "[2]"]


async def test_a_stuck_client_keeps_its_frames_in_order_until_it_reads_again() -> None:
    sub, socket = attached()
    socket.stuck = True
    for n in range(1, 4):
        assert sub.offer(f"[{n}]")
    assert socket.frames == []
    socket.stuck = False
    socket.released.set()
    await asyncio.sleep(0.01)
    assert socket.frames == ["[1]", "[2]", "[3]"]
    assert sub.offer("[4]") and socket.frames[-1] == "[4]"  # written at once again


async def test_a_client_too_slow_for_its_backlog_is_closed_without_the_stale_frames() -> None:
    sub, socket = attached(max_frames=2)
    socket.stuck = True
    assert sub.offer("[1]")  # the write that waits
    assert sub.offer("[2]") and sub.offer("[3]")  # the backlog
    assert not sub.offer("[4]")
    assert sub.reason.startswith("too-slow")
    socket.released.set()
    await asyncio.sleep(0.01)
    assert socket.frames == ["[1]"] and socket.closed_with == sub.reason


async def test_closing_writes_what_was_offered_first_then_closes() -> None:
    sub, socket = attached()
    sub.offer("[1]")
    sub.close("the stream ended")
    await asyncio.sleep(0.01)
    assert socket.frames == ["[1]"] and socket.closed_with == "the stream ended"
    assert not sub.offer("[2]")


async def test_a_client_that_left_is_skipped() -> None:
    sub, socket = attached()
    socket.fail = True
    sub.offer("[1]")
    assert sub.gone
    assert not sub.offer("[2]")


async def test_pull_mode_still_hands_out_frames_then_the_closing_marker() -> None:
    sub = Subscription("st_1", 4)
    sub.offer("[1]")
    sub.close("the stream ended")
    assert [await sub.next(), await sub.next()] == ["[1]", CLOSED]


def comment(sequence: int) -> dict[str, Any]:
    payload = {"comment_id": f"c{sequence}", "user_id": "u", "username": "u", "text": str(sequence)}
    return {"type": "streams.CommentPosted", "sequence": sequence, "occurred_at": "x", "payload": payload}


async def test_the_hub_sends_on_arrival_and_at_most_one_frame_per_gap() -> None:
    hub = FeedHub(Settings(live_tick_ms=200))
    hub._loop = asyncio.get_running_loop()  # no consumer thread: records are handed in below
    sub = hub.subscribe("st_1")
    socket = Socket()
    sub.attach(socket.send, socket.close)
    feed: StreamFeed = hub._feeds["st_1"]

    def ingest(*sequences: int) -> None:
        envelopes = [{**comment(s), "aggregate_type": "stream", "aggregate_id": "st_1"} for s in sequences]
        hub._ingest([orjson.dumps(env) for env in envelopes])

    ingest(1, 2)
    await asyncio.sleep(0.02)
    assert len(socket.frames) == 1  # a quiet stream's batch goes at once, as one frame
    ingest(3)
    ingest(4)
    await asyncio.sleep(0.05)
    assert len(socket.frames) == 1  # within the gap: they wait
    await asyncio.sleep(0.25)
    assert len(socket.frames) == 2  # and go together
    texts = [item["text"] for frame in socket.frames for item in orjson.loads(frame)]
    assert texts == ["1", "2", "3", "4"]
    assert feed.flusher is None
    hub.unsubscribe(sub)


def test_frames_join_into_one_array_without_decoding() -> None:
    from spaktok.api.live import _join

    assert _join(['[{"a":1}]']) == '[{"a":1}]'
    assert orjson.loads(_join(['[{"a":1}]', '[{"b":2},{"c":3}]'])) == [{"a": 1}, {"b": 2}, {"c": 3}]


async def test_a_client_that_subscribes_later_gets_the_frames_made_after_it_and_the_log_is_trimmed() -> None:
    hub = FeedHub(Settings(live_tick_ms=10))
    hub._loop = asyncio.get_running_loop()
    early, late = Socket(), Socket()
    first = hub.subscribe("st_1")
    first.attach(early.send, early.close)

    def ingest(*sequences: int) -> None:
        envelopes = [{**comment(s), "aggregate_type": "stream", "aggregate_id": "st_1"} for s in sequences]
        hub._ingest([orjson.dumps(env) for env in envelopes])

    ingest(1)
    await asyncio.sleep(0.05)
    second = hub.subscribe("st_1")
    second.attach(late.send, late.close)
    ingest(2)
    await asyncio.sleep(0.05)
    texts = [[item["text"] for f in s.frames for item in orjson.loads(f)] for s in (early, late)]
    assert texts == [["1", "2"], ["2"]]
    feed = hub._feeds["st_1"]
    assert feed.frames == [] and feed.writer is None  # every client had every frame
    assert hub.frames_sent == 3 and hub.items_sent == 3
