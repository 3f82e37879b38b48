"""confluent-kafka producer wrapper (idempotent, acks=all) shared by the API and projectors."""

from __future__ import annotations

import threading
from collections.abc import Sequence

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
