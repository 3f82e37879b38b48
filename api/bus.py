"""Sends commands to Kafka and waits for their outcome (correlated by command id) up to a timeout.

Every API process tails `spaktok.outcomes` from its end, so whichever process sent a command sees
its answer; a bounded memory of recent outcomes serves `GET /v1/commands/{id}` after a 202.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import OrderedDict

from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from spaktok.commands.base import Command
from spaktok.commands.outcome import Outcome
from spaktok.infra import topics
from spaktok.infra.kafka import EventProducer
from spaktok.settings import Settings

log = logging.getLogger(__name__)


class OutcomeListener:
    """A consumer thread on the outcomes topic that resolves asyncio futures by correlation id."""

    def __init__(self, settings: Settings, memory: int = 50_000) -> None:
        self.settings = settings
        self.memory = memory
        self.recent: OrderedDict[str, Outcome] = OrderedDict()
        self.received = 0
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="outcome-listener", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float = 30.0) -> None:
        self._loop = loop
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"could not reach the broker at {self.settings.broker} to follow outcomes")

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def expect(self, correlation_id: str) -> asyncio.Future[Outcome]:
        """Register interest before sending, so a fast answer is never missed."""
        assert self._loop is not None
        future: asyncio.Future[Outcome] = self._loop.create_future()
        with self._lock:
            known = self.recent.get(correlation_id)
            if known is not None:
                future.set_result(known)
            else:
                self._waiters.setdefault(correlation_id, []).append(future)
        return future

    def forget(self, correlation_id: str, future: asyncio.Future[Outcome]) -> None:
        with self._lock:
            waiters = self._waiters.get(correlation_id)
            if waiters and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[correlation_id]

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.broker,
                "group.id": f"spaktok-api-outcomes-{uuid.uuid4().hex}",  # never committed: a private tail
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "fetch.min.bytes": 1,
            }
        )
        try:
            metadata = consumer.list_topics(topics.OUTCOMES.name, timeout=20)
            partitions = metadata.topics[topics.OUTCOMES.name].partitions
            consumer.assign([TopicPartition(topics.OUTCOMES.name, p, OFFSET_END) for p in partitions])
            # force the end offsets to be resolved before declaring readiness
            for tp in consumer.assignment():
                consumer.get_watermark_offsets(tp, timeout=10)
            self._ready.set()
            while not self._stop.is_set():
                for msg in consumer.consume(500, timeout=0.1):
                    if msg.error() is None:
                        self._deliver(msg.value())
        except Exception:  # noqa: BLE001
            log.exception("outcome listener stopped")
        finally:
            consumer.close()

    def _deliver(self, raw: bytes) -> None:
        try:
            outcome = Outcome.from_bytes(raw)
        except Exception:  # noqa: BLE001 - a foreign record on the topic is ignored
            log.warning("ignoring an undecodable outcome record")
            return
        with self._lock:
            self.received += 1
            self.recent[outcome.correlation_id] = outcome
            self.recent[outcome.command_id] = outcome
            while len(self.recent) > self.memory:
                self.recent.popitem(last=False)
            waiters = self._waiters.pop(outcome.correlation_id, [])
        if waiters and self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve_all, waiters, outcome)


def _resolve_all(waiters: list[asyncio.Future[Outcome]], outcome: Outcome) -> None:
    for future in waiters:
        if not future.done():
            future.set_result(outcome)


class CommandBus:
    """`execute` = send + wait; `None` means not decided within the wait (the caller answers 202)."""

    def __init__(self, settings: Settings, producer: EventProducer, listener: OutcomeListener) -> None:
        self.settings = settings
        self.producer = producer
        self.listener = listener

    def send(self, command: Command) -> None:
        spec = topics.COMMAND_TOPIC_BY_AGGREGATE[command.aggregate_type]
        self.producer.send(
            spec.name, command.aggregate_id, command.to_bytes(), [("command-type", command.type)]
        )

    async def execute(self, command: Command, timeout: float | None = None) -> Outcome | None:
        future = self.listener.expect(command.correlation)
        self.send(command)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout or self.settings.command_timeout_s)
        except TimeoutError:
            self.listener.forget(command.correlation, future)
            return None

    def status(self, command_id: str) -> Outcome | None:
        return self.listener.recent.get(command_id)
