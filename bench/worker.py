"""CPU per command of the worker's deciders, in process: the real runners, no Kafka, no Faust.

    python bench/worker.py                            # every audience size up to 1,000,000 viewers
    python bench/worker.py --quick                    # fewer repetitions, audiences up to 100,000 (~1 min)
    python bench/worker.py --sizes 100,10000          # only these audience sizes

The worker's cost that Kafka cannot hide is the decision itself: decode a batch of commands, load
the aggregate, decide, seal and encode the events, store what changed. This bench runs the worker's
own `AggregateRunner`s (the stream, wallet and earnings specs the worker wires in
`processors/app.py`, with its partition counts and outcome memory) over an in-memory table and an
in-memory broker that acknowledges every record at once, and times each `handle_batch` with
`time.process_time()` (CPU of this process, after warm-up batches). Commands are encoded as the
API encodes them (`Command.to_bytes()`), each a record of its own on its key's partition, in batches
of 100 records as Faust hands them to the decider agent. It measures:

1. CPU per command: a comment, a like batch (`RecordLikes` of 40 taps), a heartbeat batch
   (`RecordHeartbeats` of 40 viewers) and a join on a live stream with 1,000 viewers whose like-id
   memory is full (any stream after a few minutes of likes), and a gift's saga end to end: the
   wallet's `SendGift` (debit) -> the stream's `DeliverGift` -> the earnings' `CreditEarnings`, each
   runner's forwards (what the broker got on the next command topic, bundled and merged as the runner
   sends them) fed to the next runner as the real system does.
2. The CPU of one batch of 100 joins on a stream that already has 100; 10,000; 100,000; 1,000,000
   viewers (the audience built through the runner itself by batches of 10,000 joins; every measured
   batch brings 100 new viewers; the median is reported), and the bytes that batch writes to the table.
3. The restart: a new runner over a copy of the biggest stream's table handles one heartbeat batch;
   its wall time includes decoding the stored state (the user-hash cache is cleared first, as in a
   fresh process).
4. Bytes written to the table (sum of the values put) per batch: storage should follow the change,
   not the size of the aggregate.

Issue #17's targets: <= 60 us of CPU per comment; a join batch at 1 M viewers <= 1.5x its cost at
100 viewers; a 1 M-viewer stream loaded after a restart in <= 10 s. The table shows each figure
against its target; the last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import logging
import pstats
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

import spaktok.commands.catalog  # noqa: F401 - every command type must be decodable, as in the worker
from spaktok.commands import parted_map, parts
from spaktok.commands.base import Command
from spaktok.commands.gifts import CatalogGift, load_catalog
from spaktok.commands.stream_state import LIKE_ID_MEMORY
from spaktok.commands.streams import JoinStream, OpenStream, RecordHeartbeats, RecordLikes, SendComment
from spaktok.commands.wallets import PurchaseCoins, SendGift
from spaktok.events.envelope import TYPE_HEADER
from spaktok.infra import bundles, topics
from spaktok.infra.collector import tune_collector
from spaktok.processors.aggregate import AggregateRunner, AggregateSpec, Incoming
from spaktok.processors.earnings import EARNINGS
from spaktok.processors.streams import STREAMS
from spaktok.processors.wallets import WALLETS
from spaktok.settings import Settings

console = Console(width=max(Console().width, 160))  # the table is wide; a pipe gets 80 columns

EPOCH = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)
BATCH = 100  # records per decided batch, as Faust hands them to the agent under load
SETUP_JOINS = 10_000  # joins per batch while an audience is built
AUDIENCE = 1_000  # viewers of the stream the per-command figures are measured on
PER_EDGE_BATCH = 40  # likes or heartbeats carried by one edge batch command
GIFTS = ("rose", "finger-heart", "perfume", "doughnut", "hand-hearts", "corgi")
SIZES = (100, 10_000, 100_000, 1_000_000)
SLOW_MODE_MS = SendComment.model_fields["min_interval_ms"].default
GIFT_SAGA_EVENTS = {
    "wallets.GiftDebited": BATCH,
    "streams.GiftReceived": BATCH,
    "earnings.EarningsCredited": BATCH,
}
TARGET_US_PER_COMMENT = 60.0
TARGET_GROWTH = 1.5
TARGET_LOAD_S = 10.0
EVENT_TOPICS = {STREAMS.events_topic, WALLETS.events_topic, EARNINGS.events_topic}


class MemoryTable:
    """The runner's table (TableLike) as a dict, counting what is written to it."""

    def __init__(self, values: dict[str, bytes] | None = None) -> None:
        self.values: dict[str, bytes] = dict(values or {})
        self.bytes_put = 0
        self.puts = 0
        self.deletes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def put(self, key: str, value: bytes, partition: int) -> None:
        self.values[key] = value
        self.bytes_put += len(value)
        self.puts += 1

    def items(self) -> Iterable[tuple[str, bytes]]:
        return list(self.values.items())

    def delete(self, key: str, partition: int) -> None:
        self.values.pop(key, None)
        self.deletes += 1

    def reset(self) -> None:
        self.bytes_put = self.puts = self.deletes = 0

    def size(self) -> int:
        return sum(len(value) for value in self.values.values())


@dataclass(frozen=True, slots=True)
class Sent:
    topic: str
    key: str
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int | None


class MemoryBroker:
    """The runner's sender: keeps every record it is handed and acknowledges it at once."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._acked: asyncio.Future[None] | None = None

    async def send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> asyncio.Future[None]:
        self.sent.append(Sent(topic, key, value, headers, partition))
        if self._acked is None or self._acked.get_loop() is not asyncio.get_running_loop():
            self._acked = asyncio.get_running_loop().create_future()
            self._acked.set_result(None)
        return self._acked  # one resolved future for all: the broker's cost is not the runner's

    def take(self) -> list[Sent]:
        sent, self.sent = self.sent, []
        return sent


@dataclass
class Batch:
    """One `handle_batch` (or a saga's chain of them): its cost and what it produced."""

    commands: int
    cpu_s: float
    wall_s: float
    bytes_put: int
    puts: int
    sent: list[Sent]

    def events(self) -> Counter[str]:
        return Counter(dict(s.headers)[TYPE_HEADER].decode() for s in self.sent if s.topic in EVENT_TOPICS)


def chained(batches: Sequence[Batch]) -> Batch:
    """A saga's steps as one batch: the costs added up, the commands of its first step."""
    return Batch(
        commands=batches[0].commands,
        cpu_s=sum(b.cpu_s for b in batches),
        wall_s=sum(b.wall_s for b in batches),
        bytes_put=sum(b.bytes_put for b in batches),
        puts=sum(b.puts for b in batches),
        sent=[s for b in batches for s in b.sent],
    )


@dataclass
class Measure:
    """Repeated batches of one kind of command; figures are medians over the batches."""

    name: str
    batches: list[Batch] = field(default_factory=list)
    note: str = ""

    @property
    def batch_ms(self) -> float:
        return statistics.median(b.cpu_s for b in self.batches) * 1000

    @property
    def batch_ms_mean(self) -> float:
        """What a batch costs over time: a store that folds a part pays for the ones that did not."""
        return statistics.fmean(b.cpu_s for b in self.batches) * 1000

    @property
    def us_per_command(self) -> float:
        return statistics.median(b.cpu_s / b.commands for b in self.batches) * 1e6

    @property
    def bytes_per_batch(self) -> int:
        return int(statistics.median(b.bytes_put for b in self.batches))

    @property
    def puts_per_batch(self) -> int:
        return int(statistics.median(b.puts for b in self.batches))

    @property
    def spread_ms(self) -> tuple[float, float]:
        cpu = [b.cpu_s * 1000 for b in self.batches]
        return min(cpu), max(cpu)

    def events(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for b in self.batches:
            total.update(b.events())
        return total

    def rejected(self) -> int:
        return sum(n for kind, n in self.events().items() if kind.endswith("CommandRejected"))

    def commands(self) -> int:
        return sum(b.commands for b in self.batches)


def _runner(
    spec: AggregateSpec, table: MemoryTable, broker: MemoryBroker, settings: Settings
) -> AggregateRunner:
    """A runner as `processors/app.py` builds it, over the in-memory table and broker."""
    return AggregateRunner(
        spec,
        states=table,
        send=broker.send,
        outcomes_topic=topics.OUTCOMES.name,
        deadletter_topic=topics.DEADLETTER.name,
        memory=settings.outcome_memory,
        partitions={spec.name: settings.partitions for spec in topics.COMMAND_TOPIC_BY_AGGREGATE.values()},
    )


SPECS = {"stream": STREAMS, "wallet": WALLETS, "earnings": EARNINGS}


class World:
    """The three runners of a gift's saga, their tables, one broker, a clock and the topic offsets."""

    def __init__(self, settings: Settings | None = None, setup_batch: int = SETUP_JOINS) -> None:
        self.settings = settings or Settings()
        self.setup_batch = setup_batch  # joins per batch while an audience is built
        self.broker = MemoryBroker()
        self.tables = {name: MemoryTable() for name in SPECS}
        self.runners = {
            name: _runner(spec, self.tables[name], self.broker, self.settings) for name, spec in SPECS.items()
        }
        self.offsets: Counter[str] = Counter()
        self.clock = EPOCH
        self.ids = 0

    def now(self, step_ms: int = 10) -> datetime:
        """Commands' time: event time moves on by `step_ms` per command (deciders read no clock)."""
        self.clock += timedelta(milliseconds=step_ms)
        return self.clock

    def now_ms(self) -> int:
        return int(self.clock.timestamp() * 1000)

    def command_id(self) -> str:
        self.ids += 1
        return f"bench-{self.ids:012d}"

    def records(self, commands: Sequence[Command]) -> list[Incoming]:
        """Each command a record of its own, encoded as the API encodes it, on its key's partition."""
        result = []
        for command in commands:
            topic = topics.COMMAND_TOPIC_BY_AGGREGATE[command.aggregate_type].name
            partition = bundles.partition_for(command.aggregate_id, self.settings.partitions)
            result.append(
                Incoming(
                    command.aggregate_id.encode(), command.to_bytes(), topic, partition, self.offsets[topic]
                )
            )
            self.offsets[topic] += 1
        return result

    def forwarded(self, sent: Sequence[Sent], aggregate: str) -> list[Incoming]:
        """What a runner sent onto `aggregate`'s command topic, as that topic's consumer gets it."""
        topic = topics.COMMAND_TOPIC_BY_AGGREGATE[aggregate].name
        result = []
        for s in sent:
            if s.topic != topic:
                continue
            partition = (
                s.partition
                if s.partition is not None
                else bundles.partition_for(s.key, self.settings.partitions)
            )
            result.append(Incoming(s.key.encode(), s.value, topic, partition, self.offsets[topic]))
            self.offsets[topic] += 1
        return result

    async def run(self, aggregate: str, records: list[Incoming], commands: int | None = None) -> Batch:
        """One `handle_batch`, timed: CPU and wall time, table writes, records sent."""
        table = self.tables[aggregate]
        table.reset()
        self.broker.take()
        runner = self.runners[aggregate]
        wall = time.perf_counter()
        cpu = time.process_time()
        await runner.handle_batch(records)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        count = len(records) if commands is None else commands
        return Batch(count, cpu, wall, table.bytes_put, table.puts, self.broker.take())


@dataclass
class Stream:
    """A live stream of the bench and the users watching it."""

    stream_id: str
    host: str
    viewers: list[str] = field(default_factory=list)
    joined: int = 0  # viewers ever created for it (the next joiner's number)
    likes: int = 0  # like actions sent (the next action id)
    comments: int = 0

    def new_viewer(self) -> str:
        self.joined += 1
        return f"user_{self.stream_id.removeprefix('st_bench_')}_{self.joined:08d}"


def open_stream(world: World, stream_id: str, host: str) -> OpenStream:
    return OpenStream(
        command_id=world.command_id(),
        issued_at=world.now(),
        actor_id=host,
        stream_id=stream_id,
        username=host,
        title="Friday night live",
        category="music",
        tags=["live", "jazz"],
        language="en",
        privacy="public",
        is_recorded=False,
        allow_comments=True,
        allow_gifts=True,
        is_age_restricted=False,
        is_premium=False,
        quality="720p",
        ingest_url=f"rtmp://ingest/{stream_id}",
        playback_url=f"https://cdn/{stream_id}.m3u8",
    )


def join(world: World, stream: Stream, user: str) -> JoinStream:
    return JoinStream(
        command_id=world.command_id(),
        issued_at=world.now(1),
        actor_id=user,
        stream_id=stream.stream_id,
        username=user,
        user_profile_image=f"https://img/{user}.png",
        country="FR",
        age=30,
    )


def comment(world: World, stream: Stream, user: str, step_ms: int = 10) -> SendComment:
    stream.comments += 1
    return SendComment(
        command_id=world.command_id(),
        issued_at=world.now(step_ms),
        actor_id=user,
        stream_id=stream.stream_id,
        username=user,
        user_profile_image=f"https://img/{user}.png",
        text=f"what a tune! comment {stream.comments}",
    )


def like_batch(world: World, stream: Stream, users: Sequence[str]) -> RecordLikes:
    likes = []
    for user in users:
        stream.likes += 1
        likes.append((f"lk-{stream.stream_id}-{stream.likes:09d}", user, 1 + stream.likes % 7))
    return RecordLikes(
        command_id=world.command_id(),
        issued_at=world.now(),
        actor_id="edge",
        stream_id=stream.stream_id,
        likes=likes,
    )


def heartbeat_batch(world: World, stream: Stream, users: Sequence[str]) -> RecordHeartbeats:
    at = world.now()
    at_ms = int(at.timestamp() * 1000)
    return RecordHeartbeats(
        command_id=world.command_id(),
        issued_at=at,
        actor_id="edge",
        stream_id=stream.stream_id,
        beats=[(user, at_ms) for user in users],
    )


def send_gift(world: World, stream: Stream, user: str, gift: CatalogGift, count: int) -> SendGift:
    return SendGift(
        command_id=world.command_id(),
        issued_at=world.now(),
        actor_id=user,
        user_id=user,
        stream_id=stream.stream_id,
        sender_name=user,
        sender_profile_image=f"https://img/{user}.png",
        gift=gift,
        count=count,
        coin_value_usd="0.01",
        combo_window_ms=5000,
    )


def _window(users: Sequence[str], start: int, n: int) -> list[str]:
    """`n` users from `start`, going round (so a user's turns are far apart in event time)."""
    return [users[(start + i) % len(users)] for i in range(n)]


async def live_stream(
    world: World, viewers: int, name: str = "live", progress: Callable[[int], None] | None = None
) -> Stream:
    """A started stream joined by `viewers` viewers, built through the stream runner."""
    stream = Stream(stream_id=f"st_bench_{name}", host=f"host_{name}")
    await world.run("stream", world.records([open_stream(world, stream.stream_id, stream.host)]))
    while len(stream.viewers) < viewers:
        users = [stream.new_viewer() for _ in range(min(world.setup_batch, viewers - len(stream.viewers)))]
        batch = await world.run("stream", world.records([join(world, stream, u) for u in users]))
        assert batch.events()["streams.ViewerJoined"] == len(users), batch.events()
        stream.viewers.extend(users)
        if progress is not None:
            progress(len(users))
    return stream


async def fill_like_memory(world: World, stream: Stream, like_ids: int = LIKE_ID_MEMORY) -> None:
    """Likes until the stream remembers `like_ids` like ids (by default as many as it ever does)."""
    while stream.likes < like_ids:
        commands = [
            like_batch(world, stream, _window(stream.viewers, stream.likes + i, PER_EDGE_BATCH))
            for i in range(BATCH)
        ]
        await world.run("stream", world.records(commands))


async def fund(world: World, users: Sequence[str], coins: int = 1_000_000) -> None:
    """Coins bought for every user: PurchaseCoins through the wallet runner."""
    for start in range(0, len(users), BATCH):
        commands = [
            PurchaseCoins(
                command_id=world.command_id(),
                issued_at=world.now(),
                actor_id="bench-admin",
                user_id=user,
                coins=coins,
                payment_ref=f"pay-{user}",
            )
            for user in users[start : start + BATCH]
        ]
        batch = await world.run("wallet", world.records(commands))
        assert batch.events()["wallets.CoinsPurchased"] == len(commands), batch.events()


async def _repeat(
    measure: Measure, batches: int, warmup: int, one: Callable[[], Any], expect: dict[str, int]
) -> Measure:
    """`warmup` batches, then `batches` measured ones; each must have decided `expect` (events by
    type), or the bench would be timing refusals."""
    for n in range(warmup + batches):
        batch = await one()
        _check(measure.name, batch, expect)
        if n >= warmup:
            measure.batches.append(batch)
    return measure


def _check(name: str, batch: Batch, expect: dict[str, int]) -> None:
    events = batch.events()
    if any(events[kind] != count for kind, count in expect.items()):
        raise AssertionError(f"{name}: a batch decided {dict(events)}, not {expect}")


async def measure_comments(world: World, stream: Stream, batches: int, warmup: int = 2) -> Measure:
    # a viewer's turns must be further apart than the slow mode's 2 s (1,000 viewers: 10 s)
    step_ms = max(10, 2 * SLOW_MODE_MS // len(stream.viewers))

    async def one() -> Batch:
        users = _window(stream.viewers, stream.comments, BATCH)
        commands = [comment(world, stream, u, step_ms) for u in users]
        return await world.run("stream", world.records(commands))

    note = f"{BATCH} SendComment records per batch, {len(stream.viewers):,} viewers"
    expect = {"streams.CommentPosted": BATCH}
    return await _repeat(Measure("comment", note=note), batches, warmup, one, expect)


async def measure_likes(world: World, stream: Stream, batches: int, warmup: int = 2) -> Measure:
    async def one() -> Batch:
        commands = [
            like_batch(world, stream, _window(stream.viewers, stream.likes + i, PER_EDGE_BATCH))
            for i in range(BATCH)
        ]
        return await world.run("stream", world.records(commands))

    note = f"{BATCH} RecordLikes of {PER_EDGE_BATCH} taps each per batch"
    expect = {"streams.LikesRecorded": BATCH}
    return await _repeat(Measure("like batch", note=note), batches, warmup, one, expect)


async def measure_heartbeats(world: World, stream: Stream, batches: int, warmup: int = 2) -> Measure:
    turn = 0

    async def one() -> Batch:
        nonlocal turn
        commands = []
        for _ in range(BATCH):
            commands.append(heartbeat_batch(world, stream, _window(stream.viewers, turn, PER_EDGE_BATCH)))
            turn += PER_EDGE_BATCH
        return await world.run("stream", world.records(commands))

    note = f"{BATCH} RecordHeartbeats of {PER_EDGE_BATCH} viewers each per batch"
    expect = {"streams.HeartbeatsRecorded": BATCH}
    return await _repeat(Measure("heartbeat batch", note=note), batches, warmup, one, expect)


async def measure_joins(world: World, stream: Stream, batches: int, warmup: int = 2) -> Measure:
    """Batches of new viewers joining (the audience grows by BATCH per batch)."""
    before = len(stream.viewers)

    async def one() -> Batch:
        users = [stream.new_viewer() for _ in range(BATCH)]
        batch = await world.run("stream", world.records([join(world, stream, u) for u in users]))
        stream.viewers.extend(users)
        return batch

    note = (
        f"{BATCH} JoinStream records per batch, {before:,} -> {before + (warmup + batches) * BATCH:,} viewers"
    )
    expect = {"streams.ViewerJoined": BATCH}
    return await _repeat(Measure("join", note=note), batches, warmup, one, expect)


async def measure_gift_saga(
    world: World, stream: Stream, senders: Sequence[str], batches: int, warmup: int = 2
) -> tuple[Measure, list[Measure]]:
    """SendGift batches through wallet -> stream -> earnings, each runner's forwards fed to the next;
    the saga's cost and each runner's apart."""
    catalog = load_catalog()
    rng = random.Random(17)
    names = (
        "  wallet: SendGift (debit)",
        "  stream: DeliverGift (bundled)",
        "  earnings: CreditEarnings (merged)",
    )
    steps = [Measure(name) for name in names]
    saga = Measure("gift saga", note=f"{BATCH} SendGift per batch from {len(senders):,} funded senders")
    for n in range(warmup + batches):
        users = _window(senders, n * BATCH, BATCH)
        gifts = [send_gift(world, stream, u, catalog[rng.choice(GIFTS)], rng.randint(1, 3)) for u in users]
        debit = await world.run("wallet", world.records(gifts))
        delivery = await world.run("stream", world.forwarded(debit.sent, "stream"), commands=BATCH)
        credit = await world.run("earnings", world.forwarded(delivery.sent, "earnings"), commands=BATCH)
        saga_batch = chained([debit, delivery, credit])
        _check(saga.name, saga_batch, GIFT_SAGA_EVENTS)
        if n >= warmup:
            for step, batch in zip(steps, (debit, delivery, credit), strict=True):
                step.batches.append(batch)
            saga.batches.append(saga_batch)
    return saga, steps


@dataclass
class Audience:
    """One audience size: the join batches measured on it, and how long building it took."""

    size: int
    joins: Measure
    setup_s: float
    setup_cpu_s: float
    stored_bytes: int


async def measure_audience(
    world: World,
    size: int,
    batches: int,
    warmup: int | None = None,
    progress: Callable[[int], None] | None = None,
    profiles: dict[str, str] | None = None,
) -> tuple[Audience, Stream]:
    """A stream built to `size` viewers by joins through the runner, then batches of 100 new joiners
    (with `profiles`, one more such batch under cProfile).

    The audience is built by big batches, whose stores fold the per-user maps whole; the measured
    batches of 100 come after enough of them (`steady_warmup`) for the maps' logs to be as long as
    a stream fed by small batches keeps them, so what is measured is the steady state."""
    _forget_user_hashes()  # each audience as if in a worker of its own (the cache holds ~1 M users)
    wall, cpu = time.perf_counter(), time.process_time()
    stream = await live_stream(world, size, name=f"aud{size}", progress=progress)
    setup_s, setup_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    gc.collect()
    joins = await measure_joins(world, stream, batches, steady_warmup(size) if warmup is None else warmup)
    stored = world.tables["stream"].size()
    if profiles is not None:
        users = [stream.new_viewer() for _ in range(BATCH)]
        records = world.records([join(world, stream, u) for u in users])
        profiles[f"1 join batch ({BATCH} records) on {len(stream.viewers):,} viewers"] = await profiled(
            world, "stream", [records]
        )
        stream.viewers.extend(users)
    return Audience(size, joins, setup_s, setup_cpu_s, stored), stream


def steady_warmup(size: int) -> int:
    """Batches of 100 joins after which a `size`-viewer stream's logs hold what they hold in a
    steady state: every part folded once since the big batches that built it (commands.parts)."""
    return 1 + size // (parted_map.FOLD_PER_CHANGE * BATCH)


def _forget_user_hashes() -> None:
    clear = getattr(parts.user_hash, "cache_clear", None)
    if clear is not None:
        clear()


@dataclass
class Load:
    viewers: int
    wall_s: float
    cpu_s: float
    events: Counter[str]
    stored_bytes: int


async def measure_load(world: World, stream: Stream) -> Load:
    """A restarted worker: a new runner over a copy of the table handles one heartbeat batch."""
    table = MemoryTable(world.tables["stream"].values)
    runner = _runner(STREAMS, table, world.broker, world.settings)
    command = heartbeat_batch(world, stream, stream.viewers[:PER_EDGE_BATCH])
    records = world.records([command])
    _forget_user_hashes()  # a fresh process has computed no user's hash yet
    gc.collect()
    world.broker.take()
    wall, cpu = time.perf_counter(), time.process_time()
    await runner.handle_batch(records)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    batch = Batch(1, cpu, wall, table.bytes_put, table.puts, world.broker.take())
    return Load(len(stream.viewers), wall, cpu, batch.events(), table.size())


@dataclass
class Results:
    commands: list[Measure]
    audiences: list[Audience]
    load: Load | None
    seconds: float = 0.0
    profiles: dict[str, str] = field(default_factory=dict)


async def measure_commands(
    world: World,
    batches: int,
    warmup: int = 2,
    viewers: int = AUDIENCE,
    profiles: dict[str, str] | None = None,
    like_ids: int = LIKE_ID_MEMORY,
) -> list[Measure]:
    """The per-command figures on one live stream (likes memory full) and 1,000 funded senders;
    with `profiles`, a cProfile of 10 more comment batches is added to it."""
    stream = await live_stream(world, viewers, name="cmds")
    await fill_like_memory(world, stream, like_ids)
    senders = stream.viewers[: min(len(stream.viewers), 10 * BATCH)]
    await fund(world, senders)
    gc.collect()
    likes = await measure_likes(world, stream, batches, warmup)
    comments = await measure_comments(world, stream, batches, warmup)
    beats = await measure_heartbeats(world, stream, batches, warmup)
    saga, steps = await measure_gift_saga(world, stream, senders, batches, warmup)
    joins = await measure_joins(world, stream, batches, warmup)
    if profiles is not None:
        commands = [
            [comment(world, stream, u) for u in _window(stream.viewers, stream.comments + n * BATCH, BATCH)]
            for n in range(10)
        ]
        name = f"10 comment batches ({BATCH} records each, {len(stream.viewers):,} viewers)"
        profiles[name] = await profiled(world, "stream", [world.records(c) for c in commands])
    return [comments, likes, beats, joins, saga, *steps]


async def profiled(world: World, aggregate: str, batches: list[list[Incoming]]) -> str:
    """The top 10 costs (own time) of handling `batches`, as pstats prints them."""
    profile = cProfile.Profile(time.process_time)  # CPU: other processes share the cores
    for records in batches:
        profile.enable()
        await world.runners[aggregate].handle_batch(records)
        profile.disable()
        world.broker.take()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(10)
    return out.getvalue()


def _seconds(s: float) -> str:
    return f"{s:,.2f} s" if s >= 1 else f"{s * 1000:,.1f} ms"


def _kb(n: float) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.1f} MiB"


def report(results: Results) -> dict[str, Any]:
    """Print the table; return the headline figures."""
    table = Table(title=f"worker deciders in process: CPU per command (batches of {BATCH} records)")
    for column in (
        "measure",
        "CPU",
        "CPU per batch: median · mean (min-max)",
        "table writes per batch",
        "notes",
    ):
        table.add_column(column, justify="left" if column in ("measure", "notes") else "right")
    by_name = {m.name: m for m in results.commands}
    for m in results.commands:
        low, high = m.spread_ms
        table.add_row(
            m.name,
            f"{m.us_per_command:,.1f} µs/cmd",
            f"{m.batch_ms:,.2f} · {m.batch_ms_mean:,.2f} ms ({low:,.2f}-{high:,.2f})",
            f"{_kb(m.bytes_per_batch)} in {m.puts_per_batch} puts",
            m.note,
        )
    comment_us = by_name["comment"].us_per_command
    table.add_row(
        "[bold]comment vs target[/bold]",
        f"{comment_us:,.1f} µs",
        f"target <= {TARGET_US_PER_COMMENT:.0f} µs",
        "",
        "met" if comment_us <= TARGET_US_PER_COMMENT else "[red]missed[/red]",
    )
    table.add_section()
    base = next((a for a in results.audiences if a.size == min(SIZES)), None)
    for a in results.audiences:
        low, high = a.joins.spread_ms
        growth = (
            f"{a.joins.batch_ms_mean / base.joins.batch_ms_mean:,.1f}x the 100-viewer batch (means); "
            if base
            else ""
        )
        table.add_row(
            f"{BATCH} joins on {a.size:,} viewers",
            f"{a.joins.us_per_command:,.1f} µs/join",
            f"{a.joins.batch_ms:,.2f} · {a.joins.batch_ms_mean:,.2f} ms ({low:,.2f}-{high:,.2f})",
            f"{_kb(a.joins.bytes_per_batch)} in {a.joins.puts_per_batch} puts",
            f"{growth}built in {a.setup_s:,.1f} s ({a.setup_cpu_s:,.1f} s CPU, "
            f"{a.size / max(a.setup_s, 1e-9):,.0f} joins/s); table {_kb(a.stored_bytes)}",
        )
    big = next((a for a in results.audiences if a.size == max(SIZES)), None)
    if base and big:
        growth = big.joins.batch_ms_mean / base.joins.batch_ms_mean
        table.add_row(
            f"[bold]{big.size:,} vs 100 viewers (means)[/bold]",
            f"{growth:,.1f}x",
            f"target <= {TARGET_GROWTH}x",
            "",
            "met" if growth <= TARGET_GROWTH else "[red]missed[/red]",
        )
    if results.load is not None:
        load = results.load
        table.add_section()
        met = "met" if load.wall_s <= TARGET_LOAD_S else "[red]missed[/red]"
        table.add_row(
            f"restart: load {load.viewers:,} viewers",
            f"{_seconds(load.wall_s)} wall",
            f"{_seconds(load.cpu_s)} CPU",
            f"{_kb(load.stored_bytes)} stored",
            f"a new runner, a copy of the table, 1 heartbeat batch; target <= {TARGET_LOAD_S:.0f} s: {met}",
        )
    console.print(table)
    for name, text in results.profiles.items():
        console.rule(f"cProfile: {name}")
        console.print(text.strip(), highlight=False, markup=False)
    sizes = {str(a.size): a for a in results.audiences}
    return {
        "us_per_comment": round(comment_us, 1),
        "us_per_like_batch": round(by_name["like batch"].us_per_command, 1),
        "us_per_heartbeat_batch": round(by_name["heartbeat batch"].us_per_command, 1),
        "us_per_join": round(by_name["join"].us_per_command, 1),
        "us_per_gift_saga": round(by_name["gift saga"].us_per_command, 1),
        "batch_ms": {k: round(a.joins.batch_ms, 2) for k, a in sizes.items()},
        "batch_ms_mean": {k: round(a.joins.batch_ms_mean, 2) for k, a in sizes.items()},
        "batch_bytes": {k: a.joins.bytes_per_batch for k, a in sizes.items()},
        "comment_batch_bytes": by_name["comment"].bytes_per_batch,
        "setup_s": {k: round(a.setup_s, 1) for k, a in sizes.items()},
        "load_s_1m": round(results.load.wall_s, 2)
        if results.load is not None and results.load.viewers >= 1_000_000
        else None,
        "load_viewers": results.load.viewers if results.load is not None else None,
        "load_s": round(results.load.wall_s, 3) if results.load is not None else None,
        "seconds": round(results.seconds, 1),
    }


def _advance(progress: Progress, task: TaskID, joined: int, size: int) -> None:
    progress.advance(task, joined)
    if not console.is_terminal:  # no live bar in a pipe: a line per tenth of the audience instead
        done = int(progress.tasks[task].completed)
        if done * 10 // size != (done - joined) * 10 // size:
            console.print(f"{size:,} viewers: {done:,} joined, {progress.tasks[task].elapsed:,.0f} s")


async def run(
    sizes: Sequence[int],
    batches: int,
    audience_batches: int,
    profile: bool = False,
    setup_batch: int = SETUP_JOINS,
) -> Results:
    started = time.perf_counter()
    profiles: dict[str, str] | None = {} if profile else None
    with console.status("per-command figures"):
        commands = await measure_commands(World(), batches, profiles=profiles)
    audiences: list[Audience] = []
    load = None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        for size in sizes:
            world = World(setup_batch=setup_batch)
            task = progress.add_task(f"{size:,} viewers: joining", total=size)
            audience, stream = await measure_audience(
                world,
                size,
                audience_batches,
                progress=lambda n, t=task, size=size: _advance(progress, t, n, size),
                profiles=profiles if size == max(sizes) else None,
            )
            audiences.append(audience)
            progress.update(task, description=f"{size:,} viewers: done")
            if size == max(sizes):
                progress.update(task, description=f"{size:,} viewers: loading after a restart")
                load = await measure_load(world, stream)
            del world, stream
            gc.collect()
    return Results(commands, audiences, load, time.perf_counter() - started, profiles or {})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="audience sizes (viewers)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, audiences up to 100,000")
    parser.add_argument("--batches", type=int, help="measured batches per command type (default 30; quick 8)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile a comment and the biggest join batch"
    )
    parser.add_argument(
        "--setup-batch", type=int, default=SETUP_JOINS, help="joins per batch building audiences"
    )
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.quick:
        sizes = [s for s in sizes if s <= 100_000]
    batches = args.batches or (8 if args.quick else 30)
    audience_batches = 5 if args.quick else 9
    tune_collector()  # the garbage collector as the worker runs it (processors/app.py run_worker)
    # the audiences are built by batches of thousands of joins: the worker's long-batch warning
    # would name each of them (it is for a live worker)
    logging.getLogger("spaktok.processors.aggregate").setLevel(logging.ERROR)
    results = asyncio.run(run(sizes, batches, audience_batches, args.profile, args.setup_batch))
    figures = report(results)
    print(json.dumps(figures))  # noqa: T201 - the last line is the machine-readable result


if __name__ == "__main__":
    sys.exit(main())
