"""A hot stream's cost to its own aggregate, in process: sharded (K like shards) against unsharded.

    .venv/bin/python bench/hot_stream.py                    # audiences of 10,000; 100,000; 1,000,000
    .venv/bin/python bench/hot_stream.py --quick            # 10,000 and 100,000 only
    .venv/bin/python bench/hot_stream.py --sizes 10000 --shards 4

Issue #20: a stream with 1 M viewers and likes and heartbeats from 10 % of its audience per second
must not be capped by its one aggregate's partition. Like bench/worker.py (whose in-memory table,
broker and runners this reuses), no Kafka, no Faust: the worker's own runners, the stream's
(`STREAMS`) and its shards' (`STREAM_SHARDS`), each over its own table, share one broker, and what
one sends onto the other's command topic (bundled and merged as the runner sends it) is fed to the
other in batches of <= 100 records, as Faust hands them. CPU is `time.process_time()` around each
`handle_batch`. Per audience N:

1. Build: a stream opened with `like_shards=K` (the stream forwards `OpenShard` to each shard), N
   viewers joined through the stream runner by batches of 10,000 `JoinStream` (each batch's
   `ChangeShardViewers` forwards fed to the shards). Checked: viewer_count == N == the shards' viewers.
2. A simulated second of hot traffic at 10 % of the audience: N/10 actions from random viewers, half
   likes, half heartbeats, grouped per shard into edge batches of 40 (`RecordShardLikes`,
   `RecordShardHeartbeats`), with the worker's fold timer ticking among them (`FoldShard` to every
   shard each `shard_fold_interval_s`), decided by the shard runner; then their folds (`FoldShardLikes`)
   decided by the stream runner. A warm-up second, then `--seconds` measured ones (median shown):
   the stream's CPU per second, records and commands it got, its events, the shards' CPU per action.
   The same seconds go to an unsharded stream with the same audience (`RecordLikes` and
   `RecordHeartbeats` of 40 straight to the stream) for comparison.
   Each interval of the fold timer (0.25 s) is flowed on its own, as real time spaces the ticks:
   the stream decides one batch per tick at every audience size.
2b. Back to back: `--seconds` more hot seconds whose folds the stream decides one record a batch
   right after all the shards' work: the first batch cold (as in a measured second), the others
   warm, which is the stream's own work per batch without the CPU-cache misses. Then the same for
   a control: a 1,000-viewer stream opened in the same process, whose batches do the same work at
   every size, so their growth is what the process's size (its heap) does to any batch.
3. Correctness: the stream's like total (folded) == the taps sent; viewer_count still N.
4. Silence: 1 % of the audience beats again, then the clock passes the viewer timeout and every shard
   gets `SweepShardViewers`; their `TimeOutViewers` reach the stream, which lets every other viewer
   leave. Checked: viewer_count == the beaters. That cost IS proportional to the leavers (one
   `ViewerLeft` each); it is shown per leaver, with the biggest record the runners sent.

The headline: the sharded stream's CPU per simulated second at the largest audience against the
smallest (target <= 1.5x), and the same for a warm batch and the control's. The last line is one
JSON object with the figures; the exit status is 1 if any count is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from worker import (
    BATCH,
    PER_EDGE_BATCH,
    SETUP_JOINS,
    Batch,
    MemoryTable,
    Stream,
    World,
    _advance,
    _runner,
    console,
    join,
    open_stream,
)

from spaktok.commands.base import Command
from spaktok.commands.stream_shards import (
    FoldShard,
    RecordShardHeartbeats,
    RecordShardLikes,
    SweepShardViewers,
    shard_of,
    stream_shard_id,
)
from spaktok.commands.streams import RecordHeartbeats, RecordLikes
from spaktok.events.envelope import TYPE_HEADER
from spaktok.infra import topics
from spaktok.infra.collector import tune_collector
from spaktok.processors import bundling
from spaktok.processors.aggregate import Incoming
from spaktok.processors.stream_shards import STREAM_SHARDS
from spaktok.processors.streams import STREAMS

SIZES = (10_000, 100_000, 1_000_000)
HOT_SHARE = 10  # 1 in 10 viewers acts per second
BEATER_SHARE = 100  # 1 in 100 viewers beats again before the time-out
TARGET_GROWTH = 1.5
CONTROL_SIZE = 1_000  # the audience of the control stream decided in the same process
SPECS = {"stream": STREAMS, "stream_shard": STREAM_SHARDS}
EVENT_TOPICS = {STREAMS.events_topic, STREAM_SHARDS.events_topic}
FORWARD_TOPICS = {topics.COMMAND_TOPIC_BY_AGGREGATE[name].name for name in SPECS}


@dataclass
class Step:
    """One runner's share of a flow: its batches' CPU, the records and commands it got, its events."""

    batches: int = 0
    records: int = 0
    commands: int = 0
    cpu_s: float = 0.0
    events: Counter[str] = field(default_factory=Counter)
    biggest: Counter[str] = field(default_factory=Counter)  # bytes of the biggest event, forward it sent

    def add(self, records: list[Incoming], batch: Batch) -> None:
        self.batches += 1
        self.records += len(records)
        self.commands += len(bundling.unbundled(records))
        self.cpu_s += batch.cpu_s
        for s in batch.sent:
            kind = "event" if s.topic in EVENT_TOPICS else "forward" if s.topic in FORWARD_TOPICS else ""
            if kind:
                self.biggest[kind] = max(self.biggest[kind], len(s.value))
            if s.topic in EVENT_TOPICS:
                self.events[dict(s.headers)[TYPE_HEADER].decode()] += 1

    def merge(self, other: Step) -> None:
        """`other`'s batches added to these (one second's intervals into the second)."""
        self.batches += other.batches
        self.records += other.records
        self.commands += other.commands
        self.cpu_s += other.cpu_s
        self.events.update(other.events)
        for kind, size in other.biggest.items():
            self.biggest[kind] = max(self.biggest[kind], size)

    def rejected(self) -> int:
        return sum(n for kind, n in self.events.items() if kind.endswith("CommandRejected"))


class HotWorld(World):
    """bench/worker.py's world with a hot stream's two runners: the stream and its shards."""

    def __init__(self) -> None:
        super().__init__()
        self.tables = {name: MemoryTable() for name in SPECS}
        self.runners = {
            name: _runner(spec, self.tables[name], self.broker, self.settings) for name, spec in SPECS.items()
        }

    async def flow(self, aggregate: str, records: list[Incoming], batch: int = BATCH) -> dict[str, Step]:
        """`records` decided on `aggregate` in batches of `batch`; each runner's forwards onto the
        other's command topic fed to it (batches of `BATCH`) until neither sends the other anything."""
        steps = {name: Step() for name in SPECS}
        pending: dict[str, list[Incoming]] = {aggregate: records}
        size = batch
        while pending:
            name = next(iter(pending))
            todo = pending.pop(name)
            for start in range(0, len(todo), size):
                chunk = todo[start : start + size]
                done = await self.run(name, chunk)
                steps[name].add(chunk, done)
                for other in SPECS:
                    if other != name and (forwarded := self.forwarded(done.sent, other)):
                        pending.setdefault(other, []).extend(forwarded)
            size = BATCH
        return steps

    def state(self, aggregate: str, aggregate_id: str) -> Any:
        """The aggregate as stored (decoded, not copied)."""
        stored = self.tables[aggregate].get(aggregate_id)
        assert stored is not None, f"{aggregate_id} was never stored"
        return self.runners[aggregate].store.decoded(aggregate_id, stored).state

    def at(self, at_ms: int) -> datetime:
        self.clock = datetime.fromtimestamp(at_ms / 1000, UTC)
        return self.clock


async def build(world: HotWorld, size: int, shards: int, advance: Callable[[int], None]) -> Stream:
    """A stream opened with `shards` like shards, joined by `size` viewers through the stream runner."""
    stream = Stream(stream_id=f"st_bench_hot{size}k{shards}", host=f"host_hot{size}")
    opening = open_stream(world, stream.stream_id, stream.host).model_copy(update={"like_shards": shards})
    steps = await world.flow("stream", world.records([opening]))
    assert steps["stream_shard"].events["stream_shards.ShardOpened"] == shards, steps["stream_shard"].events
    while len(stream.viewers) < size:
        users = [stream.new_viewer() for _ in range(min(SETUP_JOINS, size - len(stream.viewers)))]
        steps = await world.flow(
            "stream", world.records([join(world, stream, u) for u in users]), SETUP_JOINS
        )
        assert steps["stream"].events["streams.ViewerJoined"] == len(users), steps["stream"].events
        stream.viewers.extend(users)
        advance(len(users))
    return stream


def edge_batch(world: HotWorld, stream: Stream, shards: int, shard: int, kind: str, items: list) -> Command:
    """One edge batch of likes or heartbeats: for a shard when the stream has shards, else the stream."""
    ident = {"command_id": world.command_id(), "issued_at": world.clock, "actor_id": "edge"}
    ident["stream_id"] = stream.stream_id
    if shards and kind == "like":
        return RecordShardLikes(**ident, shard=shard, likes=items)
    if shards:
        return RecordShardHeartbeats(**ident, shard=shard, beats=items)
    return RecordLikes(**ident, likes=items) if kind == "like" else RecordHeartbeats(**ident, beats=items)


def hot_second(
    world: HotWorld, stream: Stream, shards: int, rng: random.Random
) -> tuple[list[list[Command]], int]:
    """N/10 actions over one second of event time from random viewers, half likes, half heartbeats,
    grouped per shard (and kind) into edge batches of up to 40 (sent when full, and all before each
    tick, as the edge's window of a few ms would have sent them), cut into the intervals of
    the fold timer (`shard_fold_interval_s`), each ending with its tick. Returns the intervals and
    the taps.

    An interval is flowed on its own (`run_seconds`), as real time has it: the timer's ticks are
    250 ms apart, and a worker's batch holds what arrived within a few milliseconds, so two ticks'
    folds never reach the stream in one batch unless the worker is a tick behind. (Fed as one lump,
    a small audience's whole second fitted one shard batch: its four ticks merged into one fold
    record, a big one's did not, and the stream's records per second grew 1 -> 4 for no reason of
    the audience's.)"""
    actions = len(stream.viewers) // HOT_SHARE
    ticks = max(1, round(1 / world.settings.shard_fold_interval_s))  # the fold timer's, per second
    start_ms = world.now_ms() + 1
    pending: dict[tuple[str, int], list] = {}
    intervals: list[list[Command]] = [[]]
    taps = 0
    for n in range(actions):
        user = stream.viewers[rng.randrange(len(stream.viewers))]
        at_ms = start_ms + n * 1000 // actions
        world.at(at_ms)
        kind = "like" if n % 2 == 0 else "beat"
        shard = shard_of(user, shards) if shards else 0
        items = pending.setdefault((kind, shard), [])
        if kind == "like":
            stream.likes += 1
            items.append((f"lk-{stream.stream_id}-{stream.likes:09d}", user, 1 + stream.likes % 5))
            taps += items[-1][2]
        else:
            items.append((user, at_ms))
        if len(items) == PER_EDGE_BATCH:
            intervals[-1].append(edge_batch(world, stream, shards, shard, kind, pending.pop((kind, shard))))
        if (n + 1) % max(1, actions // ticks) == 0 and n + 1 < actions:
            # the edge's window (a few ms) has long passed: what it holds went out before the tick
            intervals[-1] += [
                edge_batch(world, stream, shards, shard, kind, items)
                for (kind, shard), items in pending.items()
            ]
            pending = {}
            if shards:
                intervals[-1] += fold_ticks(world, stream, shards)
            intervals.append([])
    intervals[-1] += [
        edge_batch(world, stream, shards, shard, kind, items) for (kind, shard), items in pending.items()
    ]
    world.at(start_ms + 1000)
    if shards:  # the second's last tick: every like of the second reaches the stream
        intervals[-1] += fold_ticks(world, stream, shards)
    return intervals, taps


def fold_ticks(world: HotWorld, stream: Stream, shards: int) -> list[Command]:
    """One tick of the worker's fold timer (`shard_fold_interval_s`): a `FoldShard` to each shard."""
    ident = {"issued_at": world.clock, "actor_id": "system", "stream_id": stream.stream_id}
    return [FoldShard(**ident, command_id=world.command_id(), shard=n) for n in range(shards)]


@dataclass
class Second:
    stream: Step
    shards: Step
    actions: int


async def run_seconds(world: HotWorld, stream: Stream, shards: int, seconds: int) -> tuple[list[Second], int]:
    """A warm-up second, then `seconds` measured ones; returns those and the taps sent in all."""
    rng = random.Random(20)
    measured: list[Second] = []
    taps = 0
    for n in range(1 + seconds):
        intervals, sent = hot_second(world, stream, shards, rng)
        taps += sent
        gc.collect()
        second = {name: Step() for name in SPECS}
        for commands in intervals:
            steps = await world.flow("stream_shard" if shards else "stream", world.records(commands))
            for name, step in steps.items():
                assert not step.rejected(), f"refusals in a hot second: {dict(step.events)}"
                second[name].merge(step)
        if n:
            measured.append(
                Second(second["stream"], second["stream_shard"], len(stream.viewers) // HOT_SHARE)
            )
    return measured, taps


@dataclass
class BackToBack:
    """The stream's batches of one more hot second, decided one record each after all the shards'
    work: the first cold, the others warm."""

    cold_us: list[float]
    warm_us: list[float]
    taps: int
    control_us: list[float] = field(default_factory=list)  # a 1,000-viewer stream's, warm, same process


async def back_to_back(world: HotWorld, stream: Stream, shards: int, seconds: int) -> BackToBack:
    """`seconds` more hot seconds, each flowed through the shards whole, then its folds decided by
    the stream one record a batch, back to back. In a measured second the stream's batch comes right
    after the shards' work on the audience, which has evicted the stream's objects from the CPU
    caches, and a bigger audience evicts more; here the first batch is cold in the same way and the
    next ones are warm, so the warm ones show the stream's own work per batch, without the misses."""
    rng = random.Random(22)
    cold: list[float] = []
    warm: list[float] = []
    taps = 0
    for _ in range(seconds):
        intervals, sent = hot_second(world, stream, shards, rng)
        taps += sent
        gc.collect()
        folds: list[Incoming] = []
        for commands in intervals:
            records = world.records(commands)
            for start in range(0, len(records), BATCH):
                done = await world.run("stream_shard", records[start : start + BATCH])
                folds += world.forwarded(done.sent, "stream")
        for n, fold in enumerate(folds):
            decided = await world.run("stream", [fold])
            (warm if n else cold).append(decided.cpu_s * 1e6)
    return BackToBack(cold, warm, taps)


@dataclass
class Silence:
    beaters: int
    leavers: int
    stream: Step
    shards: Step
    viewers_after: int

    def biggest(self, kind: str) -> int:
        return max(self.stream.biggest[kind], self.shards.biggest[kind])


async def silence(world: HotWorld, stream: Stream, shards: int) -> Silence:
    """1 % of the viewers beat, the clock passes the timeout, every shard sweeps; the stream lets the
    silent ones leave."""
    timeout_ms = world.settings.viewer_timeout_s * 1000
    sweep_ms = world.now_ms() + timeout_ms + 10_000  # everyone's last sign of life is older
    beaters = random.Random(21).sample(stream.viewers, len(stream.viewers) // BEATER_SHARE)
    world.at(sweep_ms - timeout_ms // 2)
    per_shard: dict[int, list[tuple[str, int]]] = {}
    for user in beaters:
        per_shard.setdefault(shard_of(user, shards), []).append((user, world.now_ms()))
    beats = [
        edge_batch(world, stream, shards, shard, "beat", items[start : start + PER_EDGE_BATCH])
        for shard, items in per_shard.items()
        for start in range(0, len(items), PER_EDGE_BATCH)
    ]
    await world.flow("stream_shard", world.records(beats))
    world.at(sweep_ms)
    sweeps = [
        SweepShardViewers(
            command_id=world.command_id(),
            issued_at=world.clock,
            actor_id="system",
            stream_id=stream.stream_id,
            shard=n,
            silent_ms=timeout_ms,
        )
        for n in range(shards)
    ]
    gc.collect()
    steps = await world.flow("stream_shard", world.records(sweeps))
    leavers = steps["stream"].events["streams.ViewerLeft"]
    after = world.state("stream", stream.stream_id).viewer_count
    return Silence(len(beaters), leavers, steps["stream"], steps["stream_shard"], after)


@dataclass
class Audience:
    size: int
    sharded: list[Second]
    unsharded: list[Second]
    viewers_ok: bool
    likes_ok: bool
    silence: Silence
    build_s: float
    notes: list[str]
    back_to_back: BackToBack

    @property
    def warm_us(self) -> float:
        """The stream's CPU per batch decided warm (`back_to_back`): its own work, without the
        cache misses the shards' work on the audience causes."""
        return statistics.median(self.back_to_back.warm_us)

    @property
    def control_us(self) -> float:
        """A 1,000-viewer stream's warm batch, decided in the same process after the hot stream's."""
        return statistics.median(self.back_to_back.control_us)

    @property
    def cold_us(self) -> float:
        return statistics.median(self.back_to_back.cold_us)

    @property
    def cpu_ms(self) -> float:
        return statistics.median(s.stream.cpu_s for s in self.sharded) * 1000

    @property
    def us_per_record(self) -> float:
        """The stream's CPU per record it got: the cost of one fold, whatever the audience."""
        return statistics.median(s.stream.cpu_s / max(1, s.stream.records) for s in self.sharded) * 1e6

    @property
    def us_per_batch(self) -> float:
        """The stream's CPU per batch it decided: what the issue asks be independent of the audience."""
        return statistics.median(s.stream.cpu_s / max(1, s.stream.batches) for s in self.sharded) * 1e6

    @property
    def second(self) -> Second:
        """The measured second whose stream CPU is the median."""
        return sorted(self.sharded, key=lambda s: s.stream.cpu_s)[len(self.sharded) // 2]

    @property
    def leaver_us(self) -> float:
        return self.silence.stream.cpu_s / max(1, self.silence.leavers) * 1e6

    @property
    def unsharded_cpu_ms(self) -> float:
        return statistics.median(s.stream.cpu_s for s in self.unsharded) * 1000

    @property
    def shard_us_per_action(self) -> float:
        return statistics.median(s.shards.cpu_s / s.actions for s in self.sharded) * 1e6

    @property
    def silence_ok(self) -> bool:
        s = self.silence
        return s.viewers_after == s.beaters and s.leavers == self.size - s.beaters

    @property
    def exact(self) -> bool:
        return self.viewers_ok and self.likes_ok and self.silence_ok


def check_counts(
    world: HotWorld, stream: Stream, shards: int, taps: int, notes: list[str]
) -> tuple[bool, bool]:
    """The viewer count (and the shards' viewers) against the audience, the likes against the taps."""
    state = world.state("stream", stream.stream_id)
    held = sum(
        len(world.state("stream_shard", stream_shard_id(stream.stream_id, n)).viewers) for n in range(shards)
    )
    size = len(stream.viewers)
    viewers_ok = state.viewer_count == size and (not shards or held == size)
    likes_ok = state.chat.likes == taps
    if not viewers_ok:
        notes.append(f"viewer_count {state.viewer_count:,}, shards hold {held:,}, audience {size:,}")
    if not likes_ok:
        notes.append(f"{state.chat.likes:,} likes on the stream, {taps:,} taps sent")
    return viewers_ok, likes_ok


@dataclass
class Run:
    """A world with a hot stream after its hot seconds."""

    world: HotWorld
    stream: Stream
    seconds: list[Second]
    taps: int
    build_s: float
    built_ok: bool


async def hot_stream(size: int, shards: int, seconds: int, progress: Progress, notes: list[str]) -> Run:
    """A `size`-viewer stream (`shards` like shards, 0: none), checked once built, after its hot seconds."""
    world = HotWorld()
    label = f"{size:,} viewers, {shards or 'no'} shards"
    task = progress.add_task(f"{label}: joining", total=size)
    started = time.perf_counter()
    stream = await build(world, size, shards, lambda n: _advance(progress, task, n, size))
    build_s = time.perf_counter() - started
    built_ok, _ = check_counts(world, stream, shards, 0, notes)
    progress.update(task, description=f"{label}: {seconds + 1} hot seconds")
    measured, taps = await run_seconds(world, stream, shards, seconds)
    progress.update(task, description=f"{label}: done")
    return Run(world, stream, measured, taps, build_s, built_ok)


async def measure(size: int, shards: int, seconds: int, progress: Progress) -> Audience:
    """The sharded stream (built, its hot seconds, its counts, its silence), then the unsharded one."""
    notes: list[str] = []
    run = await hot_stream(size, shards, seconds, progress, notes)
    with console.status(f"{size:,} viewers: the stream's batches back to back, then a control's"):
        batches = await back_to_back(run.world, run.stream, shards, seconds)
        # the same for a small stream in the same process: what the process's size does to any batch
        control = await build(run.world, CONTROL_SIZE, shards, lambda _: None)
        batches.control_us = (await back_to_back(run.world, control, shards, seconds)).warm_us
    viewers_ok, likes_ok = check_counts(run.world, run.stream, shards, run.taps + batches.taps, notes)
    with console.status(f"{size:,} viewers: silence and time-outs"):
        quiet = await silence(run.world, run.stream, shards)
    sharded, build_s, viewers_ok = run.seconds, run.build_s, viewers_ok and run.built_ok
    del run
    gc.collect()
    run = await hot_stream(size, 0, seconds, progress, notes)
    plain_viewers, plain_likes = check_counts(run.world, run.stream, 0, run.taps, notes)
    unsharded, plain_viewers = run.seconds, plain_viewers and run.built_ok
    del run
    gc.collect()
    return Audience(
        size,
        sharded,
        unsharded,
        viewers_ok and plain_viewers,
        likes_ok and plain_likes,
        quiet,
        build_s,
        notes,
        batches,
    )


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:,.1f} MiB"


def _ok(flag: bool) -> str:
    return "yes" if flag else "[red]NO[/red]"


COLUMNS: tuple[tuple[str, Callable[[Audience], str]], ...] = (
    ("audience", lambda a: f"{a.size:,}"),
    ("stream CPU/s sharded", lambda a: f"{a.cpu_ms:,.2f} ms"),
    ("unsharded", lambda a: f"{a.unsharded_cpu_ms:,.1f} ms"),
    (
        "stream got: batches · records · cmds",
        lambda a: f"{a.second.stream.batches:,} · {a.second.stream.records:,} · {a.second.stream.commands:,}",
    ),
    ("stream CPU per batch", lambda a: f"{a.us_per_batch:,.0f} µs"),
    (
        "back to back: first · warm · control",
        lambda a: f"{a.cold_us:,.0f} · {a.warm_us:,.0f} · {a.control_us:,.0f} µs",
    ),
    ("per record", lambda a: f"{a.us_per_record:,.0f} µs"),
    ("stream events", lambda a: f"{sum(a.second.stream.events.values()):,}"),
    ("shards µs/action", lambda a: f"{a.shard_us_per_action:,.1f} µs"),
    ("viewers ok", lambda a: _ok(a.viewers_ok)),
    ("likes ok", lambda a: _ok(a.likes_ok)),
    ("timed out (ok)", lambda a: f"{a.silence.leavers:,} ({_ok(a.silence_ok)})"),
    ("their stream CPU · per leaver", lambda a: f"{a.silence.stream.cpu_s:,.2f} s · {a.leaver_us:,.0f} µs"),
    (
        "time-out biggest event · fwd",
        lambda a: f"{_mib(a.silence.biggest('event'))} · {_mib(a.silence.biggest('forward'))}",
    ),
    ("built in", lambda a: f"{a.build_s:,.0f} s"),
)


def report(audiences: Sequence[Audience], shards: int, seconds: int) -> dict[str, Any]:
    table = Table(
        title=f"a hot stream's own aggregate per simulated second ({HOT_SHARE} % of the audience "
        f"acting, {shards} shards, median of {seconds} s after 1 warm-up)"
    )
    for header, _ in COLUMNS:
        table.add_column(header, justify="right", no_wrap=header == "audience")
    for a in audiences:
        table.add_row(*(cell(a) for _, cell in COLUMNS))
    console.print(table)
    small, big = audiences[0], audiences[-1]
    growth = big.cpu_ms / small.cpu_ms
    console.print(
        f"sharded stream CPU/s at {big.size:,} vs {small.size:,} viewers: {growth:,.2f}x (target <= "
        f"{TARGET_GROWTH}x: {'met' if growth <= TARGET_GROWTH else 'missed'}): the stream decided "
        f"{small.second.stream.batches:,} -> {big.second.stream.batches:,} batches per second (one per "
        f"tick of the shards' fold timer), each costing it {small.us_per_batch:,.0f} -> "
        f"{big.us_per_batch:,.0f} µs ({big.us_per_batch / small.us_per_batch:,.2f}x). Decided back to "
        f"back, warm, a batch costs {small.warm_us:,.0f} -> {big.warm_us:,.0f} µs "
        f"({big.warm_us / small.warm_us:,.2f}x), and a {CONTROL_SIZE:,}-viewer stream's in the same process "
        f"{small.control_us:,.0f} -> {big.control_us:,.0f} µs ({big.control_us / small.control_us:,.2f}x). "
        f"Unsharded: {big.unsharded_cpu_ms / big.cpu_ms:,.0f}x the sharded "
        f"stream's CPU at {big.size:,}. Time-outs cost the stream per leaver (one ViewerLeft each)."
    )
    for a in audiences:
        for note in a.notes:
            console.print(f"[red]{a.size:,} viewers: {note}[/red]")
    return figures(audiences, shards, growth)


def figures(audiences: Sequence[Audience], shards: int, growth: float) -> dict[str, Any]:
    sizes = {str(a.size): a for a in audiences}
    ends = (audiences[0].size, audiences[-1].size)
    return {
        "bench": "hot_stream",
        "shards": shards,
        "actions_per_s": {k: a.size // HOT_SHARE for k, a in sizes.items()},
        "stream_cpu_ms_per_s": {k: round(a.cpu_ms, 3) for k, a in sizes.items()},
        "growth_1m_vs_10k": round(growth, 2) if ends == (10_000, 1_000_000) else None,
        "growth_largest_vs_smallest": round(growth, 2),
        "unsharded_stream_cpu_ms_per_s": {k: round(a.unsharded_cpu_ms, 1) for k, a in sizes.items()},
        "stream_records_per_s": {k: a.second.stream.records for k, a in sizes.items()},
        "stream_batches_per_s": {k: a.second.stream.batches for k, a in sizes.items()},
        "stream_us_per_batch": {k: round(a.us_per_batch) for k, a in sizes.items()},
        "batch_growth_largest_vs_smallest": round(audiences[-1].us_per_batch / audiences[0].us_per_batch, 2),
        "stream_us_per_batch_back_to_back": {
            k: {"first": round(a.cold_us), "warm": round(a.warm_us)} for k, a in sizes.items()
        },
        "warm_batch_growth_largest_vs_smallest": round(audiences[-1].warm_us / audiences[0].warm_us, 2),
        "control_us_per_batch": {k: round(a.control_us) for k, a in sizes.items()},
        "control_growth_largest_vs_smallest": round(audiences[-1].control_us / audiences[0].control_us, 2),
        "stream_us_per_record": {k: round(a.us_per_record) for k, a in sizes.items()},
        "shard_us_per_action": {k: round(a.shard_us_per_action, 1) for k, a in sizes.items()},
        "timeout_stream_cpu_s": {k: round(a.silence.stream.cpu_s, 2) for k, a in sizes.items()},
        "timeout_us_per_leaver": {k: round(a.leaver_us, 1) for k, a in sizes.items()},
        "timeout_biggest_bytes": {
            k: {kind: a.silence.biggest(kind) for kind in ("event", "forward")} for k, a in sizes.items()
        },
        "counts_exact": all(a.exact for a in audiences),
    }


async def run(sizes: Sequence[int], shards: int, seconds: int) -> list[Audience]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        return [await measure(size, shards, seconds, progress) for size in sizes]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="audience sizes (viewers)")
    parser.add_argument("--quick", action="store_true", help="audiences up to 100,000 only")
    parser.add_argument("--shards", type=int, default=8, help="like shards of the sharded stream (K)")
    parser.add_argument("--seconds", type=int, default=3, help="measured hot seconds (after 1 warm-up)")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.quick:
        sizes = [s for s in sizes if s <= 100_000]
    if args.shards < 1:
        parser.error("--shards must be at least 1 (the unsharded stream is always measured too)")
    tune_collector()  # the garbage collector as the worker runs it
    # the audiences are built by batches of thousands of joins: the worker's long-batch warning
    # would name each of them (it is for a live worker)
    logging.getLogger("spaktok.processors.aggregate").setLevel(logging.ERROR)
    started = time.perf_counter()
    audiences = asyncio.run(run(sizes, args.shards, args.seconds))
    result = report(audiences, args.shards, args.seconds)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))  # noqa: T201 - the last line is the machine-readable result
    return 0 if result["counts_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
