"""The realtime feed: stream events fanned out to the WebSocket and SSE clients of this API process.

The hub, by job:
- api/live_tail.py: one consumer thread per API process tails the stream events topic from its end
  and keeps only the records of streams someone here is watching (it filters on the record key, the
  stream id, before parsing);
- api/live_stream.py: on the event loop, each watched stream turns its events into feed items (what
  is pushed: docs/realtime.md) and keeps the frames made of them;
- here: the frames and the passes that take them to the subscribers;
- api/live_send.py: one client's writes: at once while its socket has room, else its own backlog;
- api/live_wire.py: a WebSocket message written straight to uvicorn's transport, framed once.

The items a consumer batch brings are encoded at once, as one frame (a JSON array of items), the
same string for every subscriber of the stream. A writer task per stream takes the frames to the
subscribers in passes: each pass offers every subscriber, as one message, the frames made until the
pass reaches it that it has not had (joined into one array, without decoding them), and passes
start at least `live_tick_ms` apart. So a quiet stream's comment leaves at once, a busy stream's
clients get at most one message per `live_tick_ms`, and a frame made while a pass over thousands of
sockets is under way is not held up by it: it goes to the rest of them in this pass and to the
others in the next, which starts as soon as this one is done.
The cost stays per message and subscriber, not per item, and under load the passes (and messages)
grow to what the process can afford instead of queueing.

A pass writes to every socket without a task or a queue per subscriber (`send_now`); only a slow
reader's writes wait, in its own bounded backlog. Every few milliseconds a pass gives the event
loop a turn, so that a request arriving meanwhile (a comment, a join) waits for a slice of a pass,
not a whole one.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from spaktok.api.access import ALLOWED, Access, StreamFacts, Viewer
from spaktok.api.live_send import CLOSED, Closer, Sender, Subscription, send_now
from spaktok.api.live_stream import BATTLE_FEED_EVENTS, StreamFeed
from spaktok.api.live_tail import FeedTail
from spaktok.settings import Settings

__all__ = ["CLOSED", "Closer", "FeedHub", "Sender", "StreamFeed", "Subscription", "send_now"]

log = logging.getLogger(__name__)

FANOUT_SLICE_S = 0.005  # a pass over the subscribers gives the event loop a turn at least this often


def _join(frames: list[str]) -> str:
    """Frames (JSON arrays) as one array, without decoding them."""
    return frames[0] if len(frames) == 1 else "[" + ",".join(f[1:-1] for f in frames) + "]"


class FeedHub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.frames_sent = 0  # messages written (a message joins the frames a client had not had)
        self.items_sent = 0
        self.slow_disconnects = 0
        self._feeds: dict[str, StreamFeed] = {}
        self._tail = FeedTail(settings, self._ingest)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._likes_every = settings.live_likes_interval_ms / 1000
        self._viewers_every = settings.live_viewer_count_interval_ms / 1000
        self._gap = settings.live_tick_ms / 1000

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float = 30.0) -> None:
        """Blocks until the consumer sits at the end of the topic (call from a worker thread)."""
        self._loop = loop
        self._tail.start(loop, timeout)
        self._ticker = loop.create_task(self._tick_forever())  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self._tail.stop()
        for feed in self._feeds.values():
            for sub in feed.subscribers:
                sub.close("the server is shutting down")

    @property
    def connections(self) -> int:
        return sum(len(feed.subscribers) for feed in self._feeds.values())

    # -- subscriptions (event loop) -------------------------------------------------------------

    def subscribe(self, stream_id: str) -> Subscription:
        sub = Subscription(stream_id, self.settings.live_queue_frames)
        feed = self._feeds.get(stream_id)
        if feed is None:
            feed = self._feeds[stream_id] = StreamFeed()
            self._tail.watched = frozenset(self._feeds)
        sub.sent_upto = feed.end  # frames made from here on (its snapshot is read after this)
        feed.subscribers.add(sub)
        return sub

    def admit(self, sub: Subscription, facts: StreamFacts, viewer: Viewer) -> Access:
        """After the route's own policy check: bind the viewer so later events re-check it."""
        feed = self._feeds.get(sub.stream_id)
        return feed.admit(sub, facts, viewer) if feed is not None else ALLOWED

    def unsubscribe(self, sub: Subscription) -> None:
        feed = self._feeds.get(sub.stream_id)
        if feed is None:
            return
        sub.stop()
        feed.subscribers.discard(sub)
        if not feed.subscribers:
            if feed.flusher is not None:
                feed.flusher.cancel()
            if feed.writer is not None:
                feed.writer.cancel()
            del self._feeds[sub.stream_id]
            self._tail.watched = frozenset(self._feeds)

    # -- event loop -------------------------------------------------------------------------------

    def _ingest(self, records: list[bytes]) -> None:
        touched: dict[int, StreamFeed] = {}
        for raw in records:
            try:
                env = orjson.loads(raw)
                if env["aggregate_type"] == "battle":
                    if env["type"] in BATTLE_FEED_EVENTS:
                        for stream_id in (env["payload"]["stream1_id"], env["payload"]["stream2_id"]):
                            feed = self._feeds.get(stream_id)
                            if feed is not None:
                                feed.apply_battle(env)
                                touched[id(feed)] = feed
                    continue
                feed = self._feeds.get(env["aggregate_id"])
                if feed is not None and env["type"] == "streams.IngestHealthSampled":
                    feed.offer_owner(env)
                elif feed is not None:
                    feed.apply(env)
                    touched[id(feed)] = feed
            except Exception:  # noqa: BLE001 - one odd record must not stop the feed
                log.warning("live feed skipped an undecodable event")
        for feed in touched.values():  # the whole batch first: what came together goes together
            self._schedule(feed)

    def _schedule(self, feed: StreamFeed) -> None:
        """Make the stream's next frame on the loop's next turn (once for a whole consumer batch)."""
        if feed.flusher is None and self._loop is not None:
            feed.flusher = self._loop.call_soon(self._flush, feed)

    def _flush(self, feed: StreamFeed) -> None:
        """Encode what is due as a frame, once, and see that a writer takes it to every subscriber."""
        feed.flusher = None
        items = feed.due(time.monotonic(), self._likes_every, self._viewers_every)
        if not items:
            return
        feed.frames.append(orjson.dumps(items).decode())
        feed.sizes.append(len(items))
        if feed.writer is None:
            feed.writer = asyncio.ensure_future(self._write(feed))

    async def _tick_forever(self) -> None:
        """Likes and viewer counts are due by the clock, not by an event: look every `live_tick_ms`."""
        while True:
            await asyncio.sleep(self._gap)
            for feed in list(self._feeds.values()):
                if feed.likes or feed.viewer_count != feed.viewers_sent:
                    self._schedule(feed)

    async def _write(self, feed: StreamFeed) -> None:
        """Passes over the stream's subscribers until each was offered every frame. A pass offers
        each subscriber, as one message, all the frames made until the pass reaches it that it has
        not had (joined into one array), so a frame made while a pass over many sockets is under
        way goes to the rest of them in this pass and to the others in the next one. Passes start
        at least `live_tick_ms` apart, and every `FANOUT_SLICE_S` of writing the event loop gets a
        turn for other work."""
        try:
            while feed.frames and feed.subscribers:
                await asyncio.sleep(max(0.0, feed.next_pass - time.monotonic()))
                started = slice_at = time.monotonic()
                feed.next_pass = started + self._gap
                joined: dict[tuple[int, int], tuple[str, int]] = {}  # (from, to) -> message, items
                for n, sub in enumerate(list(feed.subscribers), 1):
                    end = feed.end  # what was made up to now, also while this pass is under way
                    if sub.sent_upto >= end or sub.reason or sub.gone:
                        continue  # up to date, closing, or left
                    message = joined.get((sub.sent_upto, end))
                    if message is None:
                        first = sub.sent_upto - feed.base
                        message = (_join(feed.frames[first:]), sum(feed.sizes[first:]))
                        joined[(sub.sent_upto, end)] = message
                    sub.sent_upto = end
                    if sub.offer(message[0]):
                        self.frames_sent += 1
                        self.items_sent += message[1]
                    else:
                        self.slow_disconnects += 1
                    if n % 64 == 0 and time.monotonic() - slice_at >= FANOUT_SLICE_S:
                        await asyncio.sleep(0)
                        slice_at = time.monotonic()
                # forget the frames every client has had (a client that joined meanwhile is past them)
                active = [s.sent_upto for s in feed.subscribers if not (s.reason or s.gone)]
                done = min(active, default=feed.end) - feed.base
                del feed.frames[:done], feed.sizes[:done]
                feed.base += done
                if feed.ended and not feed.frames:  # the last frame (with `status`) reached everyone
                    for sub in feed.subscribers:
                        sub.close("the stream ended")
        except Exception:  # noqa: BLE001
            log.exception("live feed writer failed")
        finally:
            feed.writer = None
