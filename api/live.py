"""The realtime feed: stream events fanned out to the WebSocket and SSE clients of this API process.

One consumer thread per API process tails the stream events topic from its end and keeps only
the records of streams someone here is watching (it filters on the record key, the stream id,
before parsing). On the event loop, each watched stream collects feed items; a ticker sends what
accumulated as one frame (a JSON array of items) every `live_tick_ms`, encoded once and handed to
every subscriber of that stream. Framing per tick instead of per item is what lets one process
serve thousands of viewers of a busy chat: the cost is per frame and subscriber, not per message.

What is pushed (docs/realtime.md): comments and `join` items as they happen, likes summed per
`live_likes_interval_ms`, the viewer count at most every `live_viewer_count_interval_ms` when it
changed, and status changes. PK battles come from the battle events topic: their events name both
streams, and each goes to both audiences. A subscriber whose queue of unsent frames is full is too
slow to keep up; it is disconnected (and may reconnect) rather than holding everyone's memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
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


def _item(kind: str, env: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    payload = env["payload"]
    item = {"type": kind, "sequence": env["sequence"], "at": env["occurred_at"]}
    item.update({camel(name): payload.get(name) for name in fields})
    return item


class Subscription:
    """One connected client: a bounded queue of frames waiting to be written to its socket.

    `viewer` is who the client is, as the access policy sees them; it is set once the route admitted
    the client (None until then: nothing to re-check). `refused` holds the policy's slug when a
    later event took the right to watch away (the socket then closes with 4403)."""

    def __init__(self, stream_id: str, max_frames: int) -> None:
        self.stream_id = stream_id
        self.reason = ""
        self.refused = ""
        self.viewer: Viewer | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue(max_frames)

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

    def offer(self, frame: str) -> bool:
        if self.reason:
            return False
        try:
            self._queue.put_nowait(frame)
            return True
        except asyncio.QueueFull:
            self.close("too-slow: the client did not keep up with the feed")
            return False

    def close(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
            # make room so the closing marker always fits; the frames dropped were never going out
            while self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(CLOSED)

    async def next(self) -> str:
        """The next frame, or CLOSED."""
        return await self._queue.get()


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
    """What is pending for one stream's subscribers until the next tick."""

    subscribers: set[Subscription] = field(default_factory=set)
    items: list[dict[str, Any]] = field(default_factory=list)
    likes: int = 0
    total_likes: int | None = None
    likes_sent_at: float = 0.0
    viewer_count: int | None = None
    viewers_sent: int | None = None
    viewers_sent_at: float = 0.0
    ended: bool = False
    gifters: dict[str, dict[str, Any]] = field(default_factory=dict)  # leaderboard entries changed this tick
    pk_score: dict[str, Any] | None = None  # the latest PK scores of this tick (one item per tick)
    # the access facts: from the first admitted client's read, then moved on by the events that
    # change them; those events arriving before that read wait in `access_pending`
    facts: StreamFacts | None = None
    access_pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

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
        """A ban, privacy change, suspension (…): re-check every client. Rare, so the per-tick
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
        """Everything to send at this tick, in the order it happened (the aggregates last)."""
        items, self.items = self.items, []
        if self.likes and (now - self.likes_sent_at >= likes_every or self.ended):
            items.append({"type": "likes", "count": self.likes, "totalLikes": self.total_likes})
            self.likes, self.likes_sent_at = 0, now
        if self.gifters:  # new totals of this tick's gifters, merged by clients into GET .../leaderboard
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
        self.frames_sent = 0
        self.items_sent = 0
        self.slow_disconnects = 0
        self._feeds: dict[str, StreamFeed] = {}
        self._watched: frozenset[str] = frozenset()  # read by the consumer thread; replaced, never changed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._consume, name="live-feed", daemon=True)
        self._ticker: asyncio.Task[None] | None = None

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
        feed.subscribers.discard(sub)
        if not feed.subscribers:
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
        for raw in records:
            try:
                env = orjson.loads(raw)
                if env["aggregate_type"] == "battle":
                    if env["type"] in BATTLE_FEED_EVENTS:
                        for stream_id in (env["payload"]["stream1_id"], env["payload"]["stream2_id"]):
                            feed = self._feeds.get(stream_id)
                            if feed is not None:
                                feed.apply_battle(env)
                    continue
                feed = self._feeds.get(env["aggregate_id"])
                if feed is not None:
                    feed.apply(env)
            except Exception:  # noqa: BLE001 - one odd record must not stop the feed
                log.warning("live feed skipped an undecodable event")

    async def _tick_forever(self) -> None:
        tick = self.settings.live_tick_ms / 1000
        while True:
            await asyncio.sleep(tick)
            try:
                self.tick(time.monotonic())
            except Exception:  # noqa: BLE001
                log.exception("live feed tick failed")

    def tick(self, now: float) -> None:
        likes_every = self.settings.live_likes_interval_ms / 1000
        viewers_every = self.settings.live_viewer_count_interval_ms / 1000
        for feed in list(self._feeds.values()):
            items = feed.due(now, likes_every, viewers_every)
            if not items:
                continue
            frame = orjson.dumps(items).decode()
            for sub in list(feed.subscribers):
                if sub.reason:
                    continue  # already closing
                if sub.offer(frame):
                    self.frames_sent += 1
                    self.items_sent += len(items)
                else:
                    self.slow_disconnects += 1
            if feed.ended:
                for sub in feed.subscribers:
                    sub.close("the stream ended")
