"""The realtime feed: stream events fanned out to the WebSocket and SSE clients of this API process.

One consumer thread per API process tails the stream events topic from its end and keeps only
the records of streams someone here is watching (it filters on the record key, the stream id,
before parsing). On the event loop, each watched stream collects feed items and sends them as one
frame (a JSON array of items), encoded once and handed to every subscriber of that stream.

The items a consumer batch brings are encoded at once, as one frame. A writer task per stream
takes the frames to the subscribers in passes: each pass offers every subscriber, as one message,
the frames made until the pass reaches it that it has not had (joined into one array, without
decoding them), and passes start at least `live_tick_ms` apart. So a quiet stream's comment leaves
at once, a busy stream's clients get at most one message per `live_tick_ms`, and a frame made while
a pass over thousands of sockets is under way is not held up by it: it goes to the rest of them in
this pass and to the others in the next, which starts as soon as this one is done.
The cost stays per message and subscriber, not per item, and under load the passes (and messages)
grow to what the process can afford instead of queueing.

A pass writes to every socket without a task or a queue per subscriber: a WebSocket send whose
socket buffer has room completes without waiting, so it is run to its end on the spot (`send_now`).
Only a client whose socket is full (a slow reader) gets a task, and the messages behind it wait in
its own bounded backlog; when that is full, it is disconnected (and may reconnect) rather than
holding everyone's memory. Every few milliseconds a pass gives the event loop a turn, so that a
request arriving meanwhile (a comment, a join) waits for a slice of a pass, not a whole one.

What is pushed (docs/realtime.md): comments and `join` items as they happen, likes summed per
`live_likes_interval_ms`, the viewer count at most every `live_viewer_count_interval_ms` when it
changed, and status changes. PK battles come from the battle events topic: their events name both
streams, and each goes to both audiences.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from spaktok.api.access import ACCESS_EVENTS, ALLOWED, Access, StreamFacts, Viewer, facts_after, stream_access
from spaktok.infra import topics
from spaktok.projections.streams_views import camel
from spaktok.settings import Settings

log = logging.getLogger(__name__)

CLOSED = "closed"  # what a subscription yields once it ended (stream ended, too slow, hub stopped)
FANOUT_SLICE_S = 0.005  # a pass over the subscribers gives the event loop a turn at least this often


def _item(kind: str, env: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    payload = env["payload"]
    item = {"type": kind, "sequence": env["sequence"], "at": env["occurred_at"]}
    item.update({camel(name): payload.get(name) for name in fields})
    return item


Sender = Callable[[str], Coroutine[Any, Any, None]]  # writes one frame to a client (send_text)
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


def _join(frames: list[str]) -> str:
    """Frames (JSON arrays) as one array, without decoding them."""
    return frames[0] if len(frames) == 1 else "[" + ",".join(f[1:-1] for f in frames) + "]"


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


GIFT_FIELDS = (
    "gift_tx",
    "sender_id",
    "sender_username",
    "sender_profile_image",
    "gift_id",
    "gift_name",
    "gift_image_url",
    "gift_animation_url",
    "count",
    "coin_cost",
    "is_combo",
    "combo_id",
    "combo_count",
)


BATTLE_FEED_EVENTS = frozenset({"battles.BattleStarted", "battles.BattleScored", "battles.BattleEnded"})


@dataclass
class StreamFeed:
    """What is pending for one stream's subscribers until its next frame."""

    subscribers: set[Subscription] = field(default_factory=set)
    items: list[dict[str, Any]] = field(default_factory=list)
    likes: int = 0
    total_likes: int | None = None
    likes_sent_at: float = 0.0
    viewer_count: int | None = None
    viewers_sent: int | None = None
    viewers_sent_at: float = 0.0
    ended: bool = False
    # leaderboard entries changed since the last frame, and the latest PK scores (one item per frame)
    gifters: dict[str, dict[str, Any]] = field(default_factory=dict)
    pk_score: dict[str, Any] | None = None
    # the access facts: from the first admitted client's read, then moved on by the events that
    # change them; those events arriving before that read wait in `access_pending`
    facts: StreamFacts | None = None
    access_pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # frames not yet offered to every subscriber: frames[i] is the stream's frame number base + i
    frames: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # items per frame
    base: int = 0
    next_pass: float = 0.0  # a pass over the subscribers may not start before this (monotonic clock)
    flusher: asyncio.Handle | None = None  # a frame to make on the loop's next turn
    writer: asyncio.Future[None] | None = None  # the passes over the subscribers, while one is due

    @property
    def end(self) -> int:
        return self.base + len(self.frames)

    def admit(self, sub: Subscription, facts: StreamFacts, viewer: Viewer) -> Access:
        """Remember the client's viewer and check it against the feed's facts (which may already
        know of a ban or privacy change the client's read missed)."""
        if self.facts is None:
            for kind, payload in self.access_pending:
                facts = facts_after(facts, kind, payload)
            self.facts, self.access_pending = facts, []
        sub.viewer = viewer
        return sub.recheck(self.facts)

    def _access_changed(self, kind: str, payload: dict[str, Any]) -> None:
        """A ban, privacy change, suspension (…): re-check every client. Rare, so the per-frame
        framing stays as cheap as before."""
        if self.facts is None:
            self.access_pending.append((kind, payload))
            return
        self.facts = facts_after(self.facts, kind, payload)
        for sub in list(self.subscribers):
            sub.recheck(self.facts)

    def apply(self, env: dict[str, Any]) -> None:
        kind = env["type"]
        payload = env["payload"]
        if kind in ACCESS_EVENTS:
            self._access_changed(kind, payload)
        if kind == "streams.CommentPosted":
            fields = ("comment_id", "user_id", "username", "user_profile_image", "text", "comment_type")
            self.items.append(_item("comment", env, fields))
        elif kind == "streams.StreamUpdated":
            item = _item("updated", env, ())
            item["changes"] = {camel(k): v for k, v in payload["changes"].items()}
            self.items.append(item)
        elif kind == "streams.UserBanned":  # clients hide that user's recent comments
            self.items.append(_item("banned", env, ("user_id", "comments_deleted_since")))
        elif kind == "streams.CommentDeleted":
            self.items.append(_item("deleted", env, ("comment_id", "deleted_by", "role")))
        elif kind == "streams.CommentPinned":
            self.items.append(_item("pinned", env, ("comment_id", "previous_comment_id")))
        elif kind == "streams.GiftReceived":
            self.items.append(_item("gift", env, GIFT_FIELDS))
            self.gifters[payload["sender_id"]] = {
                "userId": payload["sender_id"],
                "username": payload["sender_username"],
                "coins": payload["sender_total_coins"],
            }
        elif kind == "streams.GuestJoined":
            self.items.append(_item("guest_joined", env, ("user_id", "guests")))
        elif kind == "streams.GuestRemoved":
            self.items.append(_item("guest_left", env, ("user_id", "by", "reason", "guests")))
        elif kind == "streams.LikesRecorded":
            self.likes += payload["count"]
            self.total_likes = payload["total_likes"]
        elif kind == "streams.ViewerJoined":
            self.viewer_count = payload["viewer_count"]
            self.items.append(_item("join", env, ("user_id", "username", "user_profile_image")))
        elif kind in ("streams.ViewerLeft", "streams.HeartbeatsRecorded"):
            self.viewer_count = payload["viewer_count"]
        elif kind in ("streams.IngestStarted", "streams.IngestStopped"):  # players show "reconnecting"
            item = _item("ingest", env, ())
            item["ingest"] = "live" if kind == "streams.IngestStarted" else "reconnecting"
            self.items.append(item)
        elif kind == "streams.StreamEnded":
            fields = ("reason", "duration", "peak_viewer_count", "total_views", "likes", "comments", "gifts")
            item = _item("status", env, fields)
            item["status"] = "ended"
            self.items.append(item)
            self.viewer_count = 0
            self.ended = True

    def apply_battle(self, env: dict[str, Any]) -> None:
        kind, payload = env["type"], env["payload"]
        sides = {
            "battleId": env["aggregate_id"],
            "stream1Id": payload["stream1_id"],
            "stream2Id": payload["stream2_id"],
        }
        if kind == "battles.BattleStarted":
            item = _item("pk_started", env, ("started_at", "ends_at"))
            self.items.append({**item, **sides})
        elif kind == "battles.BattleScored":
            self.pk_score = {
                "type": "pk_score",
                **sides,
                "score1": payload["score1"],
                "score2": payload["score2"],
            }
        elif kind == "battles.BattleEnded":
            fields = ("score1", "score2", "winner_id", "winner_stream_id", "is_tie", "winner_bonus", "reason")
            self.items.append({**_item("pk_ended", env, fields), **sides})
            self.pk_score = None  # the result carries the final scores

    def due(self, now: float, likes_every: float, viewers_every: float) -> list[dict[str, Any]]:
        """Everything to send in the next frame, in the order it happened (the aggregates last)."""
        items, self.items = self.items, []
        if self.likes and (now - self.likes_sent_at >= likes_every or self.ended):
            items.append({"type": "likes", "count": self.likes, "totalLikes": self.total_likes})
            self.likes, self.likes_sent_at = 0, now
        if self.gifters:  # new totals of this frame's gifters, merged by clients into GET .../leaderboard
            ranked = sorted(self.gifters.values(), key=lambda g: -g["coins"])
            items.append({"type": "leaderboard", "gifters": ranked})
            self.gifters = {}
        if self.pk_score is not None:
            items.append(self.pk_score)
            self.pk_score = None
        changed = self.viewer_count is not None and self.viewer_count != self.viewers_sent
        if changed and (now - self.viewers_sent_at >= viewers_every or self.ended):
            items.append({"type": "viewers", "viewerCount": self.viewer_count})
            self.viewers_sent, self.viewers_sent_at = self.viewer_count, now
        return items


class FeedHub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.frames_sent = 0  # messages written (a message joins the frames a client had not had)
        self.items_sent = 0
        self.slow_disconnects = 0
        self._feeds: dict[str, StreamFeed] = {}
        self._watched: frozenset[str] = frozenset()  # read by the consumer thread; replaced, never changed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._consume, name="live-feed", daemon=True)
        self._ticker: asyncio.Task[None] | None = None
        self._likes_every = settings.live_likes_interval_ms / 1000
        self._viewers_every = settings.live_viewer_count_interval_ms / 1000
        self._gap = settings.live_tick_ms / 1000

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float = 30.0) -> None:
        """Blocks until the consumer sits at the end of the topic (call from a worker thread)."""
        self._loop = loop
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"could not reach the broker at {self.settings.broker} for the live feed")
        self._ticker = loop.create_task(self._tick_forever())  # type: ignore[arg-type]

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.cancel()
        self._thread.join(timeout=5)
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
            self._watched = frozenset(self._feeds)
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
            self._watched = frozenset(self._feeds)

    # -- consumer thread --------------------------------------------------------------------------

    def _consume(self) -> None:
        name, battles = topics.EVENTS_STREAMS.name, topics.EVENTS_BATTLES.name
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.broker,
                "group.id": f"spaktok-api-live-{uuid.uuid4().hex}",  # a private tail, never committed
                "enable.auto.commit": False,
                "fetch.wait.max.ms": self.settings.feed_fetch_wait_ms,
            }
        )
        try:
            assignment = []
            for topic in (name, battles):
                partitions = consumer.list_topics(topic, timeout=20).topics[topic].partitions
                assignment += [TopicPartition(topic, p, OFFSET_END) for p in partitions]
            consumer.assign(assignment)
            for tp in consumer.assignment():
                consumer.get_watermark_offsets(tp, timeout=10)
            self._ready.set()
            while not self._stop.is_set():
                batch = consumer.consume(1000, timeout=0.05)
                # read after consuming: a subscription taken while consume() waited must already see
                # the events that arrived meanwhile (they can only follow its snapshot)
                watched = self._watched
                wanted = [
                    m.value()
                    for m in batch
                    if m.error() is None
                    and m.key() is not None
                    # a key that is not UTF-8 (poison) matches no stream instead of stopping the feed
                    and (m.topic() == battles or m.key().decode("utf-8", "replace") in watched)
                ]
                if wanted and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._ingest, wanted)
        except Exception:  # noqa: BLE001
            log.exception("live feed consumer stopped")
        finally:
            consumer.close()

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
                if feed is not None:
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
