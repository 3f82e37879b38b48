"""confluent-kafka producer wrapper (idempotent, acks=all) shared by the API and projectors, and the
way our consumers wait for records."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import Producer

from spaktok.settings import Settings

Headers = Sequence[tuple[str, bytes | str]]


def producer_config(settings: Settings) -> dict[str, object]:
    return {
        "bootstrap.servers": settings.broker,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.api_linger_ms,
        # murmur2 is what aiokafka (Faust) uses: a key lands on the same partition whoever writes it
        "partitioner": "murmur2_random",
    }


class Polling(Protocol):
    def poll(self, timeout: float) -> Any: ...

    def consume(self, num_messages: int, timeout: float) -> list[Any]: ...


def next_records(consumer: Polling, limit: int, wait_s: float) -> list[Any]:
    """The records as soon as there is one: waits up to `wait_s` for the first, then takes what was
    fetched along with it, up to `limit`; nothing if none came.

    `consume(n, timeout)` returns only when it has all `n` records or when the timeout has run out,
    so waiting with it holds a lone record for the whole timeout (measured: one record available,
    `consume(2000, 1.0)` answered after 1.0 s). Every consumer that someone waits on waits here."""
    first = consumer.poll(wait_s)
    if first is None:
        return []
    return [first, *consumer.consume(limit - 1, timeout=0)] if limit > 1 else [first]


class EventProducer:
    """A thread-safe producer with a background poller that surfaces delivery failures."""

    def __init__(self, settings: Settings) -> None:
        self._producer = Producer(producer_config(settings))
        self._stop = threading.Event()
        self._errors: list[str] = []
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def _on_delivery(self, err: object, msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send(
        self, topic: str, key: str, value: bytes, headers: Headers = (), partition: int | None = None
    ) -> None:
        """`partition` None: the key's partition (murmur2)."""
        placed = {} if partition is None else {"partition": partition}
        while True:
            try:
                self._producer.produce(
                    topic,
                    key=key.encode(),
                    value=value,
                    headers=list(headers),
                    on_delivery=self._on_delivery,
                    **placed,
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: wait for deliveries, never drop

    def flush(self, timeout: float = 10.0) -> int:
        return self._producer.flush(timeout)

    def take_errors(self) -> list[str]:
        errors, self._errors = self._errors, []
        return errors

    def close(self) -> None:
        self.flush()
        self._stop.set()
        self._poller.join(timeout=2)
