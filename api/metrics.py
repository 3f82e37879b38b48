"""What this API process counts for `/metrics` and the admin metrics: HTTP answers by status and the
size of the dead-letter topic (every stage's parked records), both cheap enough for every scrape."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from spaktok.infra import topics
from spaktok.settings import Settings

ASGIApp = Any


class HttpCounters:
    """Responses by status code; every error this API sends is a problem+json with its status."""

    def __init__(self) -> None:
        self.by_status: Counter[int] = Counter()
        self._lock = threading.Lock()

    def count(self, status: int) -> None:
        with self._lock:
            self.by_status[status] += 1

    def by_class(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self.by_status)
        classes = {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
        for status, n in counts.items():
            key = f"{status // 100}xx"
            classes[key] = classes.get(key, 0) + n
        return classes

    def snapshot(self) -> dict[int, int]:
        with self._lock:
            return dict(self.by_status)


class CountResponses:
    """ASGI middleware: counts each HTTP response's status (WebSockets are not counted)."""

    def __init__(self, app: ASGIApp, counters: HttpCounters) -> None:
        self.app = app
        self.counters = counters

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.counters.count(int(message["status"]))
            await send(message)

        await self.app(scope, receive, counting_send)


class DeadLetterGauge:
    """Records on the dead-letter topic (high watermarks summed), asked of the broker at most every
    `ttl` seconds. None when the broker does not answer in time."""

    def __init__(self, settings: Settings, ttl: float = 15.0) -> None:
        self.settings = settings
        self.ttl = ttl
        self._value: int | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def value(self) -> int | None:
        with self._lock:
            if time.monotonic() - self._at < self.ttl:
                return self._value
            self._value = self._read()
            self._at = time.monotonic()
            return self._value

    def _read(self) -> int | None:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.broker,
                "group.id": "spaktok-metrics",
                "enable.auto.commit": False,
            }
        )
        try:
            name = topics.DEADLETTER.name
            metadata = consumer.list_topics(name, timeout=2)
            partitions = metadata.topics[name].partitions if name in metadata.topics else {}
            total = 0
            for partition in partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=2)
                total += max(high, 0)
            return total
        except KafkaException:
            return None
        finally:
            consumer.close()
