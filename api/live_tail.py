"""The feed's consumer thread: one per API process, it tails the stream and battle events topics
from their end and hands the event loop, per consumer batch, the records someone here watches.

It keeps only the records of watched streams (it filters on the record key, the stream id, before
anything is parsed) and every battle record (a battle's events name both of its streams, which the
loop looks up). It is a private tail: a group of its own, never committed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from spaktok.infra import topics
from spaktok.infra.kafka import next_records
from spaktok.settings import Settings

log = logging.getLogger(__name__)


class FeedTail:
    def __init__(self, settings: Settings, deliver: Callable[[list[bytes]], None]) -> None:
        self.settings = settings
        self.deliver = deliver  # called on the event loop with each batch's wanted records, in order
        self.watched: frozenset[str] = frozenset()  # read by the thread: replaced, never changed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._consume, name="live-feed", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float = 30.0) -> None:
        """Blocks until the consumer sits at the end of the topics (call from a worker thread)."""
        self._loop = loop
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"could not reach the broker at {self.settings.broker} for the live feed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

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
                batch = next_records(consumer, 1000, 0.05)
                # read after consuming: a subscription taken while consume() waited must already see
                # the events that arrived meanwhile (they can only follow its snapshot)
                watched = self.watched
                wanted = [
                    m.value()
                    for m in batch
                    if m.error() is None
                    and m.key() is not None
                    # a key that is not UTF-8 (poison) matches no stream instead of stopping the feed
                    and (m.topic() == battles or m.key().decode("utf-8", "replace") in watched)
                ]
                if wanted and self._loop is not None:
                    self._loop.call_soon_threadsafe(self.deliver, wanted)
        except Exception:  # noqa: BLE001
            log.exception("live feed consumer stopped")
        finally:
            consumer.close()
