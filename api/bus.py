"""Sends commands to Kafka and waits for their outcome (correlated by command id) up to a timeout.

Every API process tails `spaktok.outcomes` from its end, so whichever process sent a command sees
its answer; a bounded memory of recent outcomes serves `GET /v1/commands/{id}` after a 202.

The memories hold what the garbage collector need not walk: an outcome as its JSON bytes (parsed again
only when asked for: a retry, a status read), a command's one actor as a string. Held as a model, an
outcome was ~7 tracked objects (the model, its dicts and lists): ~350,000 at the memory's 50,000,
walked by every full collection (api/app.py, "The cyclic garbage collector").
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import OrderedDict

import orjson
from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition

from spaktok.commands.base import Command
from spaktok.commands.outcome import Outcome
from spaktok.infra import bundles, topics
from spaktok.infra.kafka import EventProducer, next_records
from spaktok.processors.deadletter import deadletter_headers, text_key
from spaktok.settings import Settings

log = logging.getLogger(__name__)

ACTORS_KEPT = 100_000  # command id -> actors remembered by the sending process (~200 bytes each)


class OutcomeListener:
    """A consumer thread on the outcomes topic that resolves asyncio futures by correlation id."""

    def __init__(
        self, settings: Settings, memory: int = 50_000, deadletters: EventProducer | None = None
    ) -> None:
        """`deadletters`: where a record that is not an outcome is parked (None: only logged)."""
        self.settings = settings
        self.memory = memory
        self.deadletters = deadletters
        self.recent: OrderedDict[str, bytes] = OrderedDict()  # correlation and command id -> JSON
        self.received = 0
        self.refused = 0  # records (or bundle members) on the topic that were not outcomes
        self._waiters: dict[str, list[asyncio.Future[Outcome | None]]] = {}
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

    def expect(self, correlation_id: str) -> asyncio.Future[Outcome | None]:
        """Register interest before sending, so a fast answer is never missed. The future gets the
        outcome, or None from whoever gives up waiting (`CommandBus.execute`)."""
        assert self._loop is not None
        future: asyncio.Future[Outcome | None] = self._loop.create_future()
        with self._lock:
            known = self.recent.get(correlation_id)
            if known is None:
                self._waiters.setdefault(correlation_id, []).append(future)
        if known is not None:
            future.set_result(Outcome.from_bytes(known))
        return future

    def recall(self, command_id: str) -> Outcome | None:
        """The remembered outcome of a command (or of a correlation id), if it is still in memory."""
        known = self.recent.get(command_id)
        return Outcome.from_bytes(known) if known is not None else None

    def forget(self, correlation_id: str, future: asyncio.Future[Outcome | None]) -> None:
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
                "fetch.wait.max.ms": self.settings.outcome_fetch_wait_ms,
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
                # each outcome as it arrives: a caller is waiting on it (infra.kafka.next_records)
                for msg in next_records(consumer, 500, 0.1):
                    if msg.error() is None:
                        self._deliver(msg)
        except Exception:  # noqa: BLE001
            log.exception("outcome listener stopped")
        finally:
            consumer.close()

    def _deliver(self, msg: Message) -> None:
        """One outcome, or a worker batch's outcomes bundled into one array record; anything else
        (or any bundle member that is not an outcome) is parked and the rest still delivered."""
        raw = msg.value() or b""
        try:
            items = orjson.loads(raw) if bundles.is_bundle(raw) else [raw]
            if not isinstance(items, list):
                raise ValueError("an outcome bundle must be a JSON array")
        except Exception as exc:  # noqa: BLE001 - a foreign record must not stop the listener
            self._refuse(msg, raw, exc, None)
            return
        for index, item in enumerate(items):
            try:
                whole = isinstance(item, bytes)
                outcome = Outcome.from_bytes(item) if whole else Outcome.model_validate(item)
            except Exception as exc:  # noqa: BLE001
                member = None if whole else index
                self._refuse(msg, raw if member is None else orjson.dumps(item), exc, member)
                continue
            self._resolve(outcome, item if whole else orjson.dumps(item))

    def _refuse(self, msg: Message, value: bytes, exc: Exception, member: int | None) -> None:
        """Park a record that is not an outcome. Every API process tails the whole topic, so each
        parks its own copy: the copies name the same source topic, partition and offset."""
        self.refused += 1
        log.warning("an outcome record at %s/%s is not an outcome: %s", msg.partition(), msg.offset(), exc)
        if self.deadletters is None:
            return
        headers = deadletter_headers(
            exc,
            stage="outcomes",
            topic=msg.topic() or topics.OUTCOMES.name,
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            key=msg.key(),
        )
        if member is not None:
            headers.append(("bundle-member", str(member).encode()))
        self.deadletters.send(topics.DEADLETTER.name, text_key(msg.key()), value, headers)

    def _resolve(self, outcome: Outcome, raw: bytes) -> None:
        """`raw`: the outcome's JSON, what is remembered (`outcome` goes to the waiters only)."""
        with self._lock:
            self.received += 1
            for key in (outcome.correlation_id, outcome.command_id):
                # a copy of a command decided long ago is answered `noop` ("duplicate of a command
                # processed earlier"): that must not hide the first decision, which a client's retry
                # or its status read is answered from (a hidden one left a retrying client in a loop)
                if outcome.status != "noop" or key not in self.recent:
                    self.recent[key] = raw
            while len(self.recent) > self.memory:
                self.recent.popitem(last=False)
            waiters = self._waiters.pop(outcome.correlation_id, [])
        if waiters and self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve_all, waiters, outcome)


def _resolve_all(waiters: list[asyncio.Future[Outcome | None]], outcome: Outcome) -> None:
    for future in waiters:
        if not future.done():
            future.set_result(outcome)


def _give_up(future: asyncio.Future[Outcome | None]) -> None:
    if not future.done():
        future.set_result(None)


class CommandBundler:
    """Commands for one partition of a command topic travel as bundle records (infra/bundles.py):
    the worker then pays Faust's per-message cost and the dev broker its per-request cost once for
    many commands.

    Like Nagle's algorithm: a command for a partition that sent nothing in the last `window_ms`
    goes at once, alone (no delay when the system is quiet); within the window, commands wait and
    leave together when it ends, so each partition sends at most one record per window under load.
    Commands for one aggregate keep their order (one queue per partition, flushed in order). Runs on
    the event loop; window 0 sends every command alone.
    """

    def __init__(
        self, producer: EventProducer, partitions: dict[str, int], *, window_ms: int, max_members: int
    ) -> None:
        self.producer = producer
        self.partitions = partitions
        self.window = window_ms / 1000
        self.max_members = max_members
        self._pending: dict[tuple[str, int], tuple[list[Command], asyncio.TimerHandle]] = {}
        self._sent_at: dict[tuple[str, int], float] = {}  # when each partition last sent, loop time

    def send(self, topic: str, command: Command) -> None:
        count = self.partitions.get(topic)
        if count is None or self.window <= 0:
            self._produce(topic, None, [command])
            return
        slot = (topic, bundles.partition_for(command.aggregate_id, count))
        pending = self._pending.get(slot)
        if pending is None:
            loop = asyncio.get_running_loop()
            now = loop.time()
            due = self._sent_at.get(slot, -self.window) + self.window
            if now >= due:  # quiet: nothing to wait for
                self._sent_at[slot] = now
                self._produce(slot[0], slot[1], [command])
                return
            pending = self._pending[slot] = ([], loop.call_at(due, self._flush, slot))
        pending[0].append(command)
        if len(pending[0]) >= self.max_members:
            self._flush(slot)

    def flush_all(self) -> None:
        for slot in list(self._pending):
            self._flush(slot)

    def _flush(self, slot: tuple[str, int]) -> None:
        pending = self._pending.pop(slot, None)
        if pending is None:
            return
        commands, flusher = pending
        flusher.cancel()
        self._sent_at[slot] = asyncio.get_running_loop().time()
        self._produce(slot[0], slot[1], commands)

    def _produce(self, topic: str, partition: int | None, commands: list[Command]) -> None:
        value, kind = bundles.pack([c.to_bytes() for c in commands], commands[0].type)
        self.producer.send(topic, commands[0].aggregate_id, value, [("command-type", kind)], partition)


class CommandBus:
    """`execute` = send + wait; `None` means not decided within the wait (the caller answers 202)."""

    def __init__(
        self,
        settings: Settings,
        producer: EventProducer,
        listener: OutcomeListener,
        partitions: dict[str, int] | None = None,
    ) -> None:
        """`partitions`: each topic's partition count on the broker; known, commands are bundled."""
        self.settings = settings
        self.producer = producer
        self.listener = listener
        self.bundler = CommandBundler(
            producer,
            partitions or {},
            window_ms=settings.command_bundle_window_ms,
            max_members=bundles.MAX_MEMBERS,
        )
        # who asked for each command this process sent, for `GET /v1/commands/{id}` (its actor or an
        # admin only); bounded like the outcome memory, oldest forgotten first. One actor is kept as
        # its id (a string is no work for the garbage collector), an edge batch's users as a set.
        self.actors: OrderedDict[str, str | frozenset[str]] = OrderedDict()

    def remember_actors(self, command_id: str, actors: frozenset[str] | str) -> None:
        """Name the users a command speaks for (an edge batch speaks for every user in it)."""
        self.actors[command_id] = actors
        if len(self.actors) > ACTORS_KEPT:
            self.actors.popitem(last=False)

    def actors_of(self, command_id: str) -> frozenset[str] | None:
        """The users who may read a command's status, if this process knows: it sent the command,
        or the outcome names its actor. None: unknown here."""
        actors = self.actors.get(command_id)
        if actors is not None:
            return frozenset({actors}) if isinstance(actors, str) else actors
        outcome = self.status(command_id)
        if outcome is not None and outcome.actor_id:
            return frozenset({outcome.actor_id})
        return None

    def send(self, command: Command) -> None:
        if command.command_id not in self.actors:
            self.remember_actors(command.command_id, command.actor_id)
        self.bundler.send(topics.COMMAND_TOPIC_BY_AGGREGATE[command.aggregate_type].name, command)

    async def execute(self, command: Command, timeout: float | None = None) -> Outcome | None:
        future = self.listener.expect(command.correlation)
        self.send(command)
        # the future is this call's own: at the deadline it is answered None (one timer, no task
        # cancellation and no second future, as `wait_for(shield(...))` or `timeout()` cost)
        deadline = asyncio.get_running_loop().call_later(
            timeout or self.settings.command_timeout_s, _give_up, future
        )
        try:
            outcome = await future
        finally:
            deadline.cancel()
        if outcome is None:
            self.listener.forget(command.correlation, future)
        return outcome

    def status(self, command_id: str) -> Outcome | None:
        return self.listener.recall(command_id)
