"""Feed messages written straight to uvicorn's WebSocket transport: the one place that knows
uvicorn's internals (uvicorn 0.55, its websockets-sansio protocol, websockets 17; pinned by the
last tests of tests/integration/test_live_feed.py).

A pass over 5,000 subscribers writes the same message 5,000 times. Through Starlette's
`WebSocket.send_text`, the ASGI send chain and uvicorn's protocol, every write encodes the text
again, builds a frame and runs half a dozen coroutine layers around the one `write` system call.
Here the frame is built once per message, and each socket gets it with one `transport.write`: the
API's CPU per message written fell from 24-37 µs to 17-18 µs (docs/realtime.md "Writing a frame").

Only while that is exactly what uvicorn would do: the connection is uvicorn's websockets-sansio
protocol, it negotiated no extension (the API turns permessage-deflate off, cli.py), it is open,
nobody started closing it, and its transport has room (not paused by a slow reader). Otherwise —
a full socket, a closing connection, another server — the write takes the ASGI way, which waits for
room or raises as it always did. The app's own sends (accept, snapshot, close) always take that way.
"""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from spaktok.api.live_send import Sender

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - another server, or a uvicorn without it: the ASGI way
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

_last: tuple[str | None, bytes] = (None, b"")  # the message last framed, and its frame


def frame(text: str) -> bytes:
    """`text` as a server's WebSocket text frame (unmasked, no extension), built once per message: a
    pass offers the same string object to every subscriber it reaches."""
    global _last
    if _last[0] is not text:
        _last = (text, Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[]))
    return _last[1]


def uvicorn_protocol(websocket: WebSocket) -> Any | None:
    """The uvicorn connection behind `websocket`, if writing to it directly is safe: its protocol is
    the one this module knows and no extension changes the framing."""
    # Starlette keeps the ASGI receive callable, which uvicorn hands over as its protocol's method
    protocol = getattr(getattr(websocket, "_receive", None), "__self__", None)
    if WebSocketsSansIOProtocol is None or type(protocol) is not WebSocketsSansIOProtocol:
        return None
    if protocol.conn.extensions or protocol.conn.state is not State.OPEN:
        return None
    return protocol


def frame_sender(websocket: WebSocket) -> Sender:
    """A feed `Sender` for an accepted `websocket`: the direct write when it is safe, else send_text."""
    protocol = uvicorn_protocol(websocket)
    if protocol is None:
        return websocket.send_text
    conn, transport, writable = protocol.conn, protocol.transport, protocol.writable

    async def send(text: str) -> None:
        open_ = conn.state is State.OPEN and not protocol.close_sent and not transport.is_closing()
        if open_ and writable.is_set():
            transport.write(frame(text))
        else:
            await websocket.send_text(text)  # waits for room, or raises once the client left

    return send
