"""The realtime feed of one stream: `WS /v1/streams/{id}/live` and its SSE twin `GET .../events`.

Both carry the same frames: a JSON array of feed items (docs/realtime.md). The first frame is a
`snapshot` of the stream's counters from the read model; the subscription is taken before that
read, so nothing that happens in between is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from spaktok.api.auth import InvalidToken, Principal, decode_token
from spaktok.api.deps import CurrentUser, ServicesDep, StreamPath, get_services
from spaktok.api.live import CLOSED, FeedHub, Subscription
from spaktok.api.live_wire import frame_sender
from spaktok.api.problems import Problem
from spaktok.api.readable import admit, policy

router = APIRouter(prefix="/v1/streams/{stream_id}", tags=["realtime"])

SSE_KEEPALIVE_S = 15.0
SNAPSHOT_FIELDS = ("status", "viewerCount", "peakViewerCount", "totalViews", "likes", "comments")

# WebSocket close codes. Refusals are sent after accepting, because a browser cannot read the HTTP
# status of a refused handshake but can read a close code and reason: 4401 no valid token,
# 4404 no such stream (or a private one the caller may not know of), 4403 refused by the access
# policy with its slug as the reason (at connect, or later when a ban, privacy change or suspension
# takes the right away); 1013 (try again later) for a client too slow to keep up; 1000 when it ended.
CLOSE_UNAUTHORIZED, CLOSE_NOT_FOUND, CLOSE_TOO_SLOW, CLOSE_ENDED = 4401, 4404, 1013, 1000
CLOSE_REFUSED = 4403


def _snapshot(doc: dict[str, Any]) -> str:
    item = {"type": "snapshot", "streamId": doc["streamId"], **{k: doc[k] for k in SNAPSHOT_FIELDS}}
    return orjson.dumps([item]).decode()


def _hub(services: Any) -> FeedHub:
    return services.feed  # type: ignore[no-any-return]


@router.websocket("/live")
async def live(websocket: WebSocket, stream_id: str) -> None:
    services = await get_services(websocket)
    token = websocket.query_params.get("access_token")
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        token = value.strip()
    try:
        user = decode_token(services.settings, token or "")
    except InvalidToken as exc:
        await websocket.accept()
        await websocket.close(CLOSE_UNAUTHORIZED, f"a valid bearer token is required: {exc}"[:120])
        return
    hub = _hub(services)
    sub = hub.subscribe(stream_id)
    try:
        try:
            doc = await _admitted(services, hub, sub, user, stream_id)
        except Problem as refused:
            await websocket.accept()
            if refused.status == 404:
                await websocket.close(CLOSE_NOT_FOUND, "no stream with this id")
            else:
                await websocket.close(CLOSE_REFUSED, refused.type)
            return
        await websocket.accept()
        await websocket.send_text(_snapshot(doc))
        if doc["status"] != "live":
            await websocket.close(CLOSE_ENDED, "the stream is not live")
            return
        # the hub writes frames from here on (what arrived since the subscription first), straight to
        # uvicorn's transport while that is safe (api/live_wire.py)
        sub.attach(frame_sender(websocket), partial(_close, websocket))
        with contextlib.suppress(WebSocketDisconnect):
            while True:  # the client sends nothing we need; reading notices it leaving
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
    finally:
        hub.unsubscribe(sub)


async def _close(websocket: WebSocket, sub: Subscription) -> None:
    """End the connection after the last frame, with the code its reason calls for."""
    if sub.refused:
        code = CLOSE_REFUSED
    else:
        code = CLOSE_TOO_SLOW if sub.reason.startswith("too-slow") else CLOSE_ENDED
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close(code, sub.reason[:120])


async def _admitted(
    services: Any, hub: FeedHub, sub: Subscription, user: Principal, stream_id: str
) -> dict[str, Any]:
    """The stream's document once the access policy let `user` watch its feed; the subscription
    remembers the viewer (with the follow relation, for a later switch to followers-only), so a
    ban, privacy change or suspension on the feed re-checks it. Raises the refusal as a problem."""
    admitted = await admit(services, user, stream_id, policy("content"), always_follows=True)
    hub.admit(sub, admitted.facts, admitted.viewer).check()  # the feed may know of a newer ban
    return admitted.doc


@router.get("/events", response_class=StreamingResponse)
async def events(stream_id: StreamPath, user: CurrentUser, services: ServicesDep) -> StreamingResponse:
    """Server-sent events: one `items` event per frame, a comment line every 15 s to keep proxies open."""
    hub = _hub(services)
    sub = hub.subscribe(stream_id)
    try:
        doc = await _admitted(services, hub, sub, user, stream_id)
    except Problem:
        hub.unsubscribe(sub)
        raise

    async def frames() -> AsyncIterator[str]:
        try:
            yield f"event: items\ndata: {_snapshot(doc)}\n\n"
            if doc["status"] != "live":
                return
            while True:
                try:
                    frame = await asyncio.wait_for(sub.next(), SSE_KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if frame == CLOSED:
                    end = {"reason": sub.reason, **({"status": 403} if sub.refused else {})}
                    yield f"event: end\ndata: {orjson.dumps(end).decode()}\n\n"
                    return
                yield f"event: items\ndata: {frame}\n\n"
        finally:
            hub.unsubscribe(sub)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)
