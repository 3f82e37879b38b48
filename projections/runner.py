"""The consume loop shared by every projector: batches from Kafka, checkpoints kept by the projector.

Kafka's own committed offsets are not trusted for correctness: on assignment each partition is
positioned right after the offset the projector stored *with* its rows, so a crash anywhere between
writing and committing replays exactly the records not yet applied.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

import spaktok.events.catalog  # noqa: F401 - every event type must be decodable here
from spaktok.events.envelope import Envelope, decode_projectable
from spaktok.infra import topics
from spaktok.infra.kafka import EventProducer, next_records
from spaktok.processors.deadletter import deadletter_headers, text_key
from spaktok.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.2  # how long one wait for a record lasts before the stop flag is looked at again
# the linger of consumers nobody reads waiting (the notifier, the webhook outbox): at most five
# batches a second, each one transaction; a record on a quiet log still goes at once
BACKGROUND_LINGER_S = 0.2


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    envelope: Envelope
    raw: bytes = b""  # the record's bytes as the log holds them (ClickHouse archives them for restores)
    key: bytes | None = None  # the record's key as the log holds it (a dead letter carries it)


class Projector(Protocol):
    name: str

    def checkpoints(self) -> dict[tuple[str, int], int]:
        """Last applied offset per (topic, partition)."""
        ...

    def apply(self, records: list[Record], skipped: dict[tuple[str, int], int]) -> int:
        """Apply records and advance checkpoints (also past `skipped` offsets) atomically; rows written."""
        ...


@dataclass
class ProjectorStats:
    records: int = 0
    rows: int = 0
    batches: int = 0
    deadlettered: int = 0
    busy_seconds: float = 0.0
    caught_up: threading.Event = field(default_factory=threading.Event)


class ProjectionRunner:
    """Runs one projector in a thread: consume a batch, decode, apply, repeat until stopped."""

    def __init__(
        self,
        settings: Settings,
        projector: Projector,
        producer: EventProducer,
        batch_size: int = 2000,
        linger_s: float | None = None,
        subscribe: list[str] | None = None,
    ):
        """`linger_s`: the least time between two batches, Nagle-like. A record that arrives when the
        last batch is older than that is applied at once, with whatever else was already fetched,
        so a quiet log adds no delay; records arriving sooner are gathered until then (or until
        `batch_size`), so a busy log costs at most one batch's fixed writes per `linger_s`. Default
        `SPAKTOK_PROJECTOR_LINGER_MS`, for the read models (a reader may be waiting for a row); the
        notifier and the webhook outbox linger 200 ms, ClickHouse (a higher fixed cost per insert)
        `SPAKTOK_CLICKHOUSE_LINGER_MS`.
        `subscribe`: the topics to read (default: every event topic)."""
        self.settings = settings
        self.projector = projector
        self.producer = producer
        self.batch_size = batch_size
        self.linger_s = settings.projector_linger_ms / 1000 if linger_s is None else linger_s
        self.topics = subscribe or [spec.name for spec in topics.EVENT_TOPICS]
        self.stats = ProjectorStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"projector-{self.projector.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.broker,
                "group.id": f"spaktok-projector-{self.projector.name}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self.settings.kafka_session_timeout_ms,
                "heartbeat.interval.ms": self.settings.kafka_heartbeat_interval_ms,
                "fetch.wait.max.ms": self.settings.projector_fetch_wait_ms,
            }
        )
        consumer.subscribe(self.topics, on_assign=self._on_assign)
        applied_at = 0.0
        try:
            while not self._stop.is_set():
                messages = self._gather(consumer, not_before=applied_at + self.linger_s)
                if not messages:
                    self.stats.caught_up.set()
                    continue
                self._apply(messages)
                applied_at = time.monotonic()
                consumer.commit(asynchronous=True)  # informational only; checkpoints live in the store
        finally:
            consumer.close()

    def _gather(self, consumer: Consumer, not_before: float) -> list:
        """The next batch: the first record as soon as it arrives (or nothing after `POLL_S`) with
        what was fetched along with it (`infra.kafka.next_records`: waiting with `consume` held a
        lone record for the whole 200 ms), then more until `not_before` or a full batch."""
        messages = next_records(consumer, self.batch_size, POLL_S)
        if not messages:
            return []
        while len(messages) < self.batch_size and (wait := not_before - time.monotonic()) > 0:
            messages += consumer.consume(self.batch_size - len(messages), timeout=wait)
        return messages

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        stored = self.projector.checkpoints()
        for tp in partitions:
            last = stored.get((tp.topic, tp.partition))
            tp.offset = last + 1 if last is not None else OFFSET_BEGINNING
        consumer.assign(partitions)

    def _apply(self, messages: list) -> None:
        started = time.perf_counter()
        records: list[Record] = []
        skipped: dict[tuple[str, int], int] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error on %s: %s", msg.topic(), err)
                continue
            try:
                envelope = decode_projectable(msg.value())
            except Exception as exc:  # noqa: BLE001 - undecodable events are parked, never fatal
                self._deadletter(msg, exc)
                skipped[(msg.topic(), msg.partition())] = msg.offset()
                continue
            records.append(
                Record(msg.topic(), msg.partition(), msg.offset(), envelope, msg.value(), msg.key())
            )
        rows = self._apply_with_retry(records, skipped)
        self.stats.records += len(records)
        self.stats.rows += rows
        self.stats.batches += 1
        self.stats.busy_seconds += time.perf_counter() - started

    def _apply_with_retry(self, records: list[Record], skipped: dict[tuple[str, int], int]) -> int:
        """Store outages are waited out (never dead-lettered); a poisoned record is parked alone."""
        delay = 0.2
        while True:
            try:
                return self.projector.apply(records, skipped)
            except Exception as exc:  # noqa: BLE001
                if is_transient(exc) and not self._stop.is_set():
                    log.warning(
                        "%s: store unavailable (%s); retrying in %.1f s", self.projector.name, exc, delay
                    )
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                if is_transient(exc):
                    raise
                log.exception(
                    "batch of %d failed in %s; retrying one by one", len(records), self.projector.name
                )
                return self._apply_one_by_one(records, skipped)

    def _apply_one_by_one(self, records: list[Record], skipped: dict[tuple[str, int], int]) -> int:
        """Each record in its own transaction; one that fails on its own is parked and passed.

        The batch's skipped offsets are stored last, with the highest offset of every partition:
        stored first (as they were), they moved a checkpoint past records not yet applied, which a
        crash right then would have lost, and the next record's checkpoint then moved it back."""
        rows = 0
        for record in records:
            try:
                rows += self._waiting_out_outages([record])
            except Exception as exc:  # noqa: BLE001
                if is_transient(exc):
                    raise  # stopping during an outage: nothing is parked, the batch is read again
                self._deadletter_record(record, exc)
                self.projector.apply([], {(record.topic, record.partition): record.offset})
        return rows + self.projector.apply([], highest_offsets(records, skipped))

    def _waiting_out_outages(self, records: list[Record]) -> int:
        """Apply `records`, retried with backoff while the store is unreachable (until stopped)."""
        delay = 0.2
        while True:
            try:
                return self.projector.apply(records, {})
            except Exception as exc:  # noqa: BLE001
                if not is_transient(exc) or self._stop.is_set():
                    raise
                log.warning("%s: store unavailable (%s); retrying in %.1f s", self.projector.name, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _deadletter_record(self, record: Record, exc: BaseException) -> None:
        """Park a decoded record its projector refused: its original key and bytes, not a re-encoding."""
        self.stats.deadlettered += 1
        headers = deadletter_headers(
            exc,
            stage=f"project:{self.projector.name}",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
        )
        value = record.raw or record.envelope.to_bytes()
        key = text_key(record.key) if record.key is not None else record.envelope.aggregate_id
        self.producer.send(topics.DEADLETTER.name, key, value, headers)

    def _deadletter(self, msg, exc: BaseException) -> None:  # type: ignore[no-untyped-def]
        self.stats.deadlettered += 1
        headers = deadletter_headers(
            exc,
            stage=f"project:{self.projector.name}",
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            key=msg.key(),
        )
        self.producer.send(topics.DEADLETTER.name, text_key(msg.key()), msg.value() or b"", headers)


def is_transient(exc: BaseException) -> bool:
    """Connection-level failures of a store, which must be retried rather than dead-lettered."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError):
        return True
    return "connection" in type(exc).__name__.lower()


def highest_offsets(records: list[Record], skipped: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """The offset to checkpoint per partition after applying `records` and skipping `skipped`."""
    result = dict(skipped)
    for record in records:
        key = (record.topic, record.partition)
        result[key] = max(result.get(key, -1), record.offset)
    return result
