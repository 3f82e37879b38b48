"""Writing to one client of the feed: at once while its socket has room, else through its own
bounded backlog (a slow reader), and closing it after its last frame.

A pass over a stream's subscribers (api/live.py) offers each of them a message. A WebSocket send
whose socket buffer has room completes without waiting, so it is run to its end on the spot
(`send_now`): no task, queue or event-loop turn per subscriber. Only a client whose socket is full
gets a task, and the messages behind it wait in its own backlog; when that is full, it is
disconnected (and may reconnect) rather than holding everyone's memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from spaktok.api.access import ALLOWED, Access, StreamFacts, Viewer, stream_access

CLOSED = "closed"  # what a subscription yields once it ended (stream ended, too slow, hub stopped)

Sender = Callable[[str], Coroutine[Any, Any, None]]  # writes one message to a client (api/live_wire.py)
Closer = Callable[["Subscription"], Awaitable[None]]  # ends the client's connection, by its `reason`


async def _resume(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Carry on, inside a task, a coroutine that `send_now` started and that had to wait."""
    while True:
        try:
            if waiting is None:  # a bare `yield`: give the loop one turn
                await asyncio.sleep(0)
            else:
                await waiting
        except BaseException as exc:  # noqa: BLE001 - cancellation too: it belongs to the coroutine
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = coro.send(None)
        except StopIteration:
            return


def send_now(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coro` now, in the caller's callback, up to its end or its first wait; only if it has to
    wait does the rest become a task (returned). A socket send with room in the buffer never waits,
    so the fan-out pays neither a task nor a loop turn per subscriber (Python 3.12's eager tasks,
    by hand). Exceptions up to the first wait are raised here."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_resume(coro, waiting))


class Subscription:
    """One connected client and the frames not yet written to it.

    A WebSocket client is attached to a `send` (push): frames are written as they are offered, and
    only those offered while a write waits for a slow socket are kept, at most `max_frames`. Before
    it is attached (while the route reads the snapshot), and for an SSE client, which is never
    attached (pull: `next()`), frames wait in the same bounded backlog.

    `viewer` is who the client is, as the access policy sees them; it is set once the route admitted
    the client (None until then: nothing to re-check). `refused` holds the policy's slug when a
    later event took the right to watch away (the socket then closes with 4403)."""

    def __init__(self, stream_id: str, max_frames: int) -> None:
        self.stream_id = stream_id
        self.max_frames = max_frames
        self.reason = ""
        self.refused = ""
        self.viewer: Viewer | None = None
        self._backlog: deque[str] = deque()
        self._send: Sender | None = None
        self._close: Closer | None = None
        self._writer: asyncio.Task[None] | None = None  # a write that waits, then the backlog
        self._arrived: asyncio.Event | None = None  # pull mode: set when the backlog grew
        self.gone = False  # a write failed: the client left; its route notices and unsubscribes
        self.sent_upto = 0  # the hub's position in its stream's frames: all before it were offered

    def recheck(self, facts: StreamFacts) -> Access:
        """Ask the policy again; a refusal closes the subscription with the slug as its reason."""
        if self.viewer is None or self.reason:
            return ALLOWED
        access = stream_access(facts, self.viewer, "content")
        if not access.allowed:
            # a private stream's outsider who was watching knows it exists: name the reason
            self.refused = "private-stream" if access.status == 404 else access.slug
            self.close(self.refused)
        return access

    def attach(self, send: Sender, close: Closer) -> None:
        """Push from now on: what waited goes out first, in order; `close` ends the connection once
        everything before the closing marker was written."""
        self._send, self._close = send, close
        if self._backlog and self._writer is None:
            self._writer = asyncio.ensure_future(self._drain())

    def offer(self, frame: str) -> bool:
        """Write or keep `frame`; False if the client is closing (now, because it was too slow)."""
        if self.reason or self.gone:
            return False
        if self._send is None or self._writer is not None:
            if len(self._backlog) >= self.max_frames:
                self._backlog.clear()  # it reconnects and starts from a snapshot: these are moot
                self.close("too-slow: the client did not keep up with the feed")
                return False
            self._backlog.append(frame)
            if self._arrived is not None:
                self._arrived.set()
            return True
        try:
            waiting = send_now(self._send(frame))
        except Exception:  # noqa: BLE001 - the client left; its route's read notices it
            self.gone = True
            return True
        if waiting is not None:
            self._writer = asyncio.ensure_future(self._drain(waiting))
        return True

    def close(self, reason: str) -> None:
        if self.reason:
            return
        self.reason = reason
        # make room so the closing marker always fits; the frames dropped were never going out
        while len(self._backlog) >= self.max_frames:
            self._backlog.pop()
        self._backlog.append(CLOSED)
        if self._arrived is not None:
            self._arrived.set()
        if self._send is not None and self._writer is None and not self.gone:
            self._writer = asyncio.ensure_future(self._drain())

    async def _drain(self, waiting: Awaitable[None] | None = None) -> None:
        """Finish the write that waited, then write the backlog, in order, until it is empty."""
        assert self._send is not None and self._close is not None
        try:
            if waiting is not None:
                await waiting
            while self._backlog:
                frame = self._backlog.popleft()
                if frame == CLOSED:
                    await self._close(self)
                    return
                await self._send(frame)
        except Exception:  # noqa: BLE001 - the client left
            self.gone = True
        finally:
            self._writer = None

    def stop(self) -> None:
        """The client is gone: drop a write that still waits on its socket."""
        self.gone = True
        if self._writer is not None:
            self._writer.cancel()

    async def next(self) -> str:
        """Pull mode (SSE): the next frame, or CLOSED."""
        while not self._backlog:
            if self._arrived is None:
                self._arrived = asyncio.Event()
            self._arrived.clear()
            await self._arrived.wait()
        return self._backlog.popleft()
