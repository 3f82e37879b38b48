"""The realtime feed over a real WebSocket and SSE connection: what viewers see as the stream runs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from harness import LIVE_VIEWER_COUNT_INTERVAL_MS, Api, uid
from websockets.asyncio.client import connect as connect_async
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from spaktok.api.auth import mint_token
from spaktok.api.live_wire import frame_sender, uvicorn_protocol
from spaktok.infra.devstack import DevStack, free_port
from spaktok.settings import Settings


def ws_url(stack: DevStack, stream_id: str, token: str | None) -> str:
    base = stack.api_url.replace("http://", "ws://")
    query = f"?access_token={token}" if token else ""
    return f"{base}/v1/streams/{stream_id}/live{query}"


class Feed:
    """Every item one WebSocket client received, stamped on arrival by a reader thread (the test
    thread is busy sending commands, and arrival times are what the throttling checks look at)."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.items: list[tuple[float, dict[str, Any]]] = []
        self.closed: ConnectionClosed | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                frame = self.conn.recv()
                now = time.monotonic()
                self.items.extend((now, item) for item in orjson.loads(frame))
        except ConnectionClosed as closed:
            self.closed = closed

    def until(
        self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not check(items := [item for _, item in list(self.items)]):
            assert time.monotonic() < deadline, f"feed never satisfied the check; got {items}"
            time.sleep(0.02)
        return items

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [item for _, item in list(self.items) if item["type"] == kind]

    def wait_closed(self, timeout: float = 10.0) -> ConnectionClosed:
        self._reader.join(timeout)
        assert self.closed is not None, "the server did not close the connection"
        return self.closed


def start(api: Api) -> str:
    response = api.post("/v1/streams", json={"title": "Live feed", "category": "chat"})
    assert response.status_code == 201, response.text
    return str(response.json()["streamId"])


def wait_for_comment(api: Api, stream_id: str, comment_id: str) -> None:
    deadline = time.monotonic() + 20
    while comment_id not in {
        c["commentId"] for c in api.get(f"/v1/streams/{stream_id}/comments").json()["comments"]
    }:
        assert time.monotonic() < deadline, "the comment never reached the read model"
        time.sleep(0.05)


def wait_for_document(api: Api, stream_id: str) -> None:
    deadline = time.monotonic() + 20
    while api.get(f"/v1/streams/{stream_id}").status_code != 200:
        assert time.monotonic() < deadline, "the stream never reached the read model"
        time.sleep(0.05)


def test_a_viewer_sees_joins_comments_likes_counts_and_the_end(
    stack: DevStack, user: Callable[..., Api]
) -> None:
    owner_id = uid("owner")
    owner, fan = user(owner_id), user(uid("fan"), name="Fan")
    sid = start(owner)
    wait_for_document(owner, sid)
    with connect(ws_url(stack, sid, mint_token(Settings(), uid("watcher"))), open_timeout=10) as conn:
        # the client offered permessage-deflate, as browsers do; the API declines it (cli.py)
        assert conn.protocol.extensions == []
        watch_the_whole_stream(Feed(conn), sid, (owner_id, owner), fan, user)


def watch_the_whole_stream(
    feed: Feed, sid: str, broadcaster: tuple[str, Api], fan: Api, user: Callable[..., Api]
) -> None:
    owner_id, owner = broadcaster
    [snapshot] = feed.until(lambda items: len(items) > 0)
    assert (snapshot["status"], snapshot["viewerCount"], snapshot["streamId"]) == ("live", 0, sid)

    assert fan.post(f"/v1/streams/{sid}/viewers").status_code == 200
    assert fan.post(f"/v1/streams/{sid}/comments", json={"text": "hello feed"}).status_code == 201
    for taps in (2, 3, 1):
        assert fan.post(f"/v1/streams/{sid}/likes", json={"count": taps}).status_code == 200

    items = feed.until(lambda items: sum(i["count"] for i in items if i["type"] == "likes") >= 6)
    joins = feed.of("join")
    assert [j["username"] for j in joins] == ["Fan"]
    [comment] = feed.of("comment")
    assert (comment["text"], comment["username"], comment["commentType"]) == ("hello feed", "Fan", "text")
    assert sum(i["count"] for i in feed.of("likes")) == 6 and feed.of("likes")[-1]["totalLikes"] == 6
    assert items.index(joins[0]) < items.index(comment)  # pushed in the order they happened
    feed.until(lambda items: any(i["type"] == "viewers" and i["viewerCount"] == 1 for i in items))

    # moderation of the chat reaches the viewers too
    cid = comment["commentId"]
    wait_for_comment(owner, sid, cid)
    assert owner.post(f"/v1/streams/{sid}/comments/{cid}/pin").status_code == 200
    assert owner.delete(f"/v1/streams/{sid}/comments/{cid}").status_code == 200
    items = feed.until(lambda items: any(i["type"] == "deleted" for i in items))
    [pin] = feed.of("pinned")
    [deletion] = feed.of("deleted")
    assert (pin["commentId"], pin["previousCommentId"]) == (cid, None)
    assert (deletion["commentId"], deletion["deletedBy"], deletion["role"]) == (cid, owner_id, "broadcaster")
    assert items.index(pin) < items.index(deletion)

    # viewer counts are throttled: a burst of joins and a leave give few, spaced updates
    others = [user(uid("other")) for _ in range(5)]
    for other in others:
        assert other.post(f"/v1/streams/{sid}/viewers").status_code == 200
    assert others[0].delete(f"/v1/streams/{sid}/viewers/me").status_code == 200
    feed.until(lambda items: [i for i in items if i["type"] == "viewers"][-1]["viewerCount"] == 5)
    counts = [(at, item) for at, item in feed.items if item["type"] == "viewers"]
    gaps = [b[0] - a[0] for a, b in zip(counts, counts[1:], strict=False)]
    assert gaps and min(gaps) >= LIVE_VIEWER_COUNT_INTERVAL_MS / 1000 * 0.9, gaps
    assert len(counts) < 1 + 6  # six changes happened; fewer updates were pushed

    assert owner.post(f"/v1/streams/{sid}/end").status_code == 200
    feed.until(lambda items: any(i["type"] == "status" for i in items))
    [status] = feed.of("status")
    assert (status["status"], status["comments"], status["likes"]) == ("ended", 1, 6)
    closed = feed.wait_closed()
    assert closed.rcvd is not None and closed.rcvd.code == 1000


def test_sse_carries_the_same_items(stack: DevStack, user: Callable[..., Api]) -> None:
    owner, fan = user(uid("owner")), user(uid("fan"), name="Sse Fan")
    sid = start(owner)
    wait_for_document(owner, sid)
    events: list[tuple[str, Any]] = []
    opened = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {mint_token(Settings(), uid('sse'))}"}
        with httpx.stream(
            "GET", f"{stack.api_url}/v1/streams/{sid}/events", headers=headers, timeout=30
        ) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            name = ""
            for line in r.iter_lines():
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    events.append((name, orjson.loads(line[len("data: ") :])))
                    opened.set()
                    if name == "end":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(20)
    assert events[0][0] == "items" and events[0][1][0]["type"] == "snapshot"
    assert fan.post(f"/v1/streams/{sid}/viewers").status_code == 200
    assert fan.post(f"/v1/streams/{sid}/comments", json={"text": "over sse"}).status_code == 201
    assert owner.post(f"/v1/streams/{sid}/end").status_code == 200
    listener.join(30)
    assert not listener.is_alive(), "the SSE stream did not end with the stream"
    items = [item for name, frame in events if name == "items" for item in frame]
    assert [i["text"] for i in items if i["type"] == "comment"] == ["over sse"]
    assert [i["status"] for i in items if i["type"] == "status"] == ["ended"]
    assert events[-1] == ("end", {"reason": "the stream ended"})


def test_refusals_are_close_codes_with_reasons(stack: DevStack, user: Callable[..., Api]) -> None:
    sid = start(user(uid("owner")))
    with (
        connect(ws_url(stack, sid, None), open_timeout=10) as conn,
        pytest.raises(ConnectionClosed) as closed,
    ):
        conn.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert "bearer token" in closed.value.rcvd.reason

    token = mint_token(Settings(), uid("viewer"))
    with connect(ws_url(stack, "no-such-stream", token), open_timeout=10) as conn:
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404

    sse = httpx.get(
        f"{stack.api_url}/v1/streams/no-such-stream/events", headers={"Authorization": f"Bearer {token}"}
    )
    assert sse.status_code == 404 and sse.headers["content-type"] == "application/problem+json"


# -- feed frames written straight to uvicorn's transport (api/live_wire.py), against the pinned
# uvicorn: if an upgrade changes what that module relies on, these fail instead of the feed
# silently taking the slower way


@asynccontextmanager
async def uvicorn_serving(
    endpoint: Callable[[WebSocket], Awaitable[None]], deflate: bool
) -> AsyncIterator[str]:
    """The endpoint behind a real uvicorn (its default WebSocket protocol) on this loop: its URL."""
    app = FastAPI()
    app.add_api_websocket_route("/ws", endpoint)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws_per_message_deflate=deflate
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        server.should_exit = True
        await serving


async def until_the_client_leaves(websocket: WebSocket) -> None:
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except WebSocketDisconnect:
        pass


TEXTS = ["[1]", '["' + "é" * 300 + '"]', '["' + "x" * 70_000 + '"]']  # each frame length encoding


async def test_feed_frames_go_straight_to_the_transport_of_the_pinned_uvicorn() -> None:
    seen: dict[str, Any] = {}

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        seen["protocol"] = uvicorn_protocol(websocket)
        send = frame_sender(websocket)

        async def not_this_way(text: str) -> None:
            raise AssertionError("the direct write was not taken")

        websocket.send_text = not_this_way  # type: ignore[method-assign]
        for text in TEXTS:
            await send(text)
        await until_the_client_leaves(websocket)

    async with uvicorn_serving(endpoint, deflate=False) as url, connect_async(url) as client:
        received = [await asyncio.wait_for(client.recv(), 5) for _ in TEXTS]
        assert client.protocol.extensions == []  # it offered permessage-deflate; declined
    assert seen["protocol"] is not None
    assert received == TEXTS


async def test_a_connection_with_permessage_deflate_takes_the_asgi_way() -> None:
    seen: dict[str, Any] = {}

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        seen["protocol"] = uvicorn_protocol(websocket)
        send = frame_sender(websocket)
        for text in TEXTS:
            await send(text)
        await until_the_client_leaves(websocket)

    async with uvicorn_serving(endpoint, deflate=True) as url, connect_async(url) as client:
        received = [await asyncio.wait_for(client.recv(), 5) for _ in TEXTS]
        assert [e.name for e in client.protocol.extensions] == ["permessage-deflate"]
    assert seen["protocol"] is None
    assert received == TEXTS


async def test_a_full_or_closed_socket_takes_the_asgi_way() -> None:
    seen: dict[str, Any] = {}

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        protocol = uvicorn_protocol(websocket)
        send = frame_sender(websocket)
        protocol.writable.clear()  # what uvicorn does when the socket's buffer is full
        waiting = asyncio.ensure_future(send("[1]"))
        await asyncio.sleep(0.05)
        seen["waited for room"] = not waiting.done()
        protocol.writable.set()
        await waiting
        await websocket.close(1000)
        try:
            await send("[2]")
        except RuntimeError:  # what send_text raises once the app closed the connection
            seen["refused after closing"] = True

    async with uvicorn_serving(endpoint, deflate=False) as url, connect_async(url) as client:
        assert await asyncio.wait_for(client.recv(), 5) == "[1]"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(client.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert seen == {"waited for room": True, "refused after closing": True}
