"""The Faust worker: one agent per aggregate runs its decider, with state in changelogged tables."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

import faust
import mode.loop
from faust.tables.manager import TableManager
from faust.types import TopicT

import spaktok.commands.catalog  # noqa: F401 - every command type must be decodable here
from spaktok.infra import topics
from spaktok.infra.collector import tune_collector
from spaktok.processors import faust_fixes
from spaktok.processors.aggregate import AggregateRunner, AggregateSpec, Incoming
from spaktok.processors.audiences import AUDIENCES
from spaktok.processors.batches import decided_alone, slices, take_batches
from spaktok.processors.battles import BATTLES
from spaktok.processors.broadcasters import BROADCASTERS
from spaktok.processors.earnings import EARNINGS
from spaktok.processors.positions import CommandPositions
from spaktok.processors.schedules import SCHEDULES
from spaktok.processors.stream_shards import STREAM_SHARDS
from spaktok.processors.streams import STREAMS
from spaktok.processors.timers import register_timer, timers
from spaktok.processors.wallets import WALLETS
from spaktok.processors.webhooks import register_webhooks
from spaktok.settings import Settings

log = logging.getLogger(__name__)

AGGREGATES: tuple[tuple[AggregateSpec, topics.TopicSpec], ...] = (
    (STREAMS, topics.COMMANDS_STREAMS),
    (BROADCASTERS, topics.COMMANDS_BROADCASTERS),
    (AUDIENCES, topics.COMMANDS_AUDIENCES),
    (SCHEDULES, topics.COMMANDS_SCHEDULES),
    (WALLETS, topics.COMMANDS_WALLETS),
    (EARNINGS, topics.COMMANDS_EARNINGS),
    (BATTLES, topics.COMMANDS_BATTLES),
    (STREAM_SHARDS, topics.COMMANDS_STREAM_SHARDS),
)


class BytesKeyTable:
    """A Faust table addressed by str keys, stored as raw bytes so recovery yields the same keys."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, key: str, default: Any = None) -> Any:
        return self._table.get(key.encode(), default)

    def items(self) -> Iterator[tuple[str, bytes]]:
        for key, value in list(self._table.data.items()):
            yield key.decode(), value

    def delete(self, key: str, partition: int) -> None:
        raw_key = key.encode()
        self._table.data.pop(raw_key, None)
        self._table.send_changelog(partition, raw_key, None, value_serializer="raw")

    def put(self, key: str, value: bytes, partition: int) -> None:
        # What Table.__setitem__ does, with the partition given instead of taken from Faust's
        # "current event", which batches (take_events) do not set: Faust would refuse the write.
        raw_key = key.encode()
        self._table.data[raw_key] = value
        self._table.send_changelog(partition, raw_key, value)


def create_app(settings: Settings, partitions: dict[str, int] | None = None) -> faust.App:
    """Build the worker app; nothing connects until the worker starts it.

    `partitions`: each topic's partition count as the broker has it (`topics.partition_counts`);
    the command topics' counts decide how follow-up commands are bundled. Missing: as configured."""
    app = _faust_app(settings)
    topic_objects = _topic_objects(app)
    send = _sender(topic_objects)
    counts = partitions or {}
    command_partitions = {
        spec.name: counts.get(spec.name, settings.partitions)
        for spec in topics.COMMAND_TOPIC_BY_AGGREGATE.values()
    }
    runners = _register_aggregates(app, settings, send, topic_objects, command_partitions)
    recovered = _recovery_completed(app)
    for timer in timers(settings):
        register_timer(app, settings, timer, runners[timer.aggregate], send, recovered)
    register_webhooks(app, settings)  # the webhook outbox and deliverer (processors/webhooks.py)
    return app


def _faust_app(settings: Settings) -> faust.App:
    """The Faust app as configured: this worker's own data folder, raw bytes, Kafka's timeouts."""
    datadir = settings.data_dir / (
        "faust" if settings.worker_index == 0 else f"faust-{settings.worker_index}"
    )
    datadir.mkdir(parents=True, exist_ok=True)
    faust_fixes.apply(settings.worker_fetch_wait_ms)
    return faust.App(
        "spaktok-worker",
        broker=f"kafka://{settings.broker}",
        store="memory://",
        datadir=str(datadir),
        web_enabled=settings.worker_web_port is not None,
        web_port=settings.worker_web_port or 6066,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=settings.kafka_session_timeout_ms / 1000,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # aiokafka's default 16 KiB batch holds one like or heartbeat batch event, and it keeps one
        # request in flight per partition: every record would cost a full broker round trip
        producer_max_batch_size=1024 * 1024,
        producer_max_request_size=topics.MAX_RECORD_BYTES,  # what every topic takes (infra/topics.py)
        producer_linger=settings.worker_linger_ms / 1000,
        key_serializer="raw",
        value_serializer="raw",
    )


def _topic_objects(app: faust.App) -> dict[str, TopicT]:
    """Every topic of the project as a Faust topic of raw bytes, by name."""
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    return {spec.name: app.topic(spec.name, internal=False, **raw) for spec in topics.ALL_TOPICS}


def _sender(topic_objects: dict[str, TopicT]) -> Callable[..., Awaitable[Any]]:
    """`send(topic, key, value, headers, partition=None)` onto any of the project's topics."""

    async def send(
        topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]], partition: int | None = None
    ) -> Awaitable[Any]:
        # Topic.send hands the record to the producer and returns the future of its acknowledgement
        return await topic_objects[topic].send(
            key=key.encode(), value=value, headers=headers, partition=partition
        )

    return send


def _register_aggregates(
    app: faust.App,
    settings: Settings,
    send: Any,
    topic_objects: dict[str, TopicT],
    command_partitions: dict[str, int],
) -> dict[str, AggregateRunner]:
    """Per aggregate: its state table, its runner and the agent deciding its command topic; the app
    learns to resume every command topic from the positions stored in those tables."""
    app.spaktok_runners = {}  # type: ignore[attr-defined]
    all_positions: list[tuple[CommandPositions, str]] = []

    async def resume_offsets(assignment: set[Any]) -> dict[Any, int]:
        offsets: dict[Any, int] = {}
        for positions, topic in all_positions:
            offsets.update(await positions.resume_offsets(assignment, topic))
        return offsets

    app.spaktok_resume_offsets = resume_offsets  # type: ignore[attr-defined]
    for spec, command_topic in AGGREGATES:
        # key_type/value_type=bytes is what makes Faust pick the raw codec for the changelog too;
        # a `schema=` argument alone leaves recovery decoding keys as JSON (and failing silently)
        table_types: dict[str, Any] = {
            "partitions": settings.partitions,
            "key_type": bytes,
            "value_type": bytes,
        }
        states = app.Table(f"{spec.aggregate_type}-state", **table_types)
        runner = AggregateRunner(
            spec,
            states=BytesKeyTable(states),
            send=send,
            outcomes_topic=topics.OUTCOMES.name,
            deadletter_topic=topics.DEADLETTER.name,
            memory=settings.outcome_memory,
            partitions=command_partitions,
        )
        app.spaktok_runners[spec.aggregate_type] = runner  # type: ignore[attr-defined]
        positions = CommandPositions(BytesKeyTable(states), lambda: app.consumer)
        all_positions.append((positions, command_topic.name))
        _register_agent(
            app,
            topic_objects[command_topic.name],
            runner,
            positions,
            batch_size=settings.worker_batch_size,
            batch_wait=settings.worker_batch_wait_ms / 1000,
        )
    return app.spaktok_runners  # type: ignore[attr-defined, no-any-return]


def _recovery_completed(app: faust.App) -> asyncio.Event:
    """Set once Faust has restored every table: a timer or agent deciding before then would pick wrongly."""
    tables = app.tables
    # App.tables is typed as the TableManagerT interface, which has no `recovery`; the object is the
    # concrete TableManager (conf.TableManager is left at its default)
    assert isinstance(tables, TableManager)
    return tables.recovery.completed


def _still_assigned(app: faust.App, partitions: frozenset[Any]) -> bool:
    """The consumer still holds every one of `partitions` (its group has not given them away)."""
    return partitions <= app.consumer.assignment()


async def _decide_slice(
    app: faust.App,
    runner: AggregateRunner,
    positions: CommandPositions,
    piece: list[Incoming],
    tps: dict[tuple[str, int], Any],
) -> bool:
    """Decide, publish and store one slice of a batch, then record how far each of its partitions
    is decided; False when its partitions moved to another worker meanwhile (nothing of it kept)."""
    last = {(record.topic, record.partition): record.offset for record in piece}
    partitions = frozenset(tps[key] for key in last)
    if not await runner.handle_batch(piece, partial(_still_assigned, app, partitions)):
        return False
    for key, offset in last.items():
        positions.decided(tps[key], offset)
    return True


def _register_agent(
    app: faust.App,
    source: Any,
    runner: AggregateRunner,
    positions: CommandPositions,
    *,
    batch_size: int,
    batch_wait: float,
) -> None:
    recovered = _recovery_completed(app)

    async def decide_commands(stream: Any) -> None:
        async for events in take_batches(stream, batch_size, batch_wait):
            if not recovered.is_set():
                # Faust resumes the command partitions a moment before recovery is marked done;
                # deciding on a half-restored table would refuse commands for aggregates that exist
                await recovered.wait()
            admitted: list[Incoming] = []
            tps: dict[tuple[str, int], Any] = {}
            for event in events:
                message = event.message
                if await positions.admit(message.tp, message.offset):
                    tps[message.topic, message.partition] = message.tp
                    admitted.append(
                        Incoming(
                            event.key,
                            event.value,
                            message.topic,
                            message.partition,
                            message.offset,
                            alone=decided_alone(message.headers),
                        )
                    )
            for piece in slices(admitted):
                if not await _decide_slice(app, runner, positions, piece, tps):
                    for tp in tps.values():  # not decided here: read the positions again from the table
                        positions.forget(tp)
                    break
                await asyncio.sleep(0)  # the loop is free between slices (timers, keepalive, fetches)

    decide_commands.__name__ = f"{runner.spec.aggregate_type}_decider"
    app.agent(source, name=f"{runner.spec.aggregate_type}-decider", concurrency=1)(decide_commands)


def run_worker(settings: Settings, loglevel: str = "warn") -> None:
    """Run the worker until SIGINT/SIGTERM (blocks); topics are created first."""
    # uvloop, as the API runs: Faust supports it (mode.loop), and the worker's loop turns over
    # Kafka fetches, produce callbacks and timers thousands of times a second
    mode.loop.use("uvloop")
    topics.ensure_topics(settings)
    app = create_app(settings, topics.partition_counts(settings))
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG (and filters in its handler), so every
    # debug call of Faust and aiokafka built a log record: ~10 % of the worker's time under load
    worker.spinner = None
    tune_collector()  # what start-up built is walked by no collection (infra/collector.py)
    worker.execute_from_commandline()
