"""Load benchmark on the embedded stack: drive the real pipeline and print one table.

    python bench/load.py --mode kafka   # commands straight into Kafka, as fast as the producer goes
    python bench/load.py --mode http    # simulated viewers over HTTP (join, heartbeat, like, comment)

It starts its own dev stack (broker, worker, projector, Postgres, chDB, API) in a temporary data
dir, creates a few live streams, applies the load, and measures:

- commands/s accepted (into Kafka, or HTTP 200/201/202 answers),
- the worker: Kafka messages/s decided and user actions/s folded (a batched like carries many taps),
  timed from the append timestamps of the events it wrote,
- each projector: events/s applied, timed from load start until the read model holds everything,
- command -> read model latency p50/p99: a probe posts a comment over HTTP every 100 ms during the
  load and polls Postgres until the comment row exists,
- the raw broker consume rate (confluent-kafka reading the same events), measured in the same run,
  so the worker figure can be read as a fraction of what the broker can deliver.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import asyncio
import random
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from spaktok.api.auth import mint_token
from spaktok.commands.streams import JoinStream, RecordHeartbeats, RecordLikes, SendComment
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack, free_port
from spaktok.infra.kafka import producer_config
from spaktok.settings import Settings
from sqlalchemy import create_engine, text

console = Console()


@dataclass
class Load:
    """What was sent and what the read models must end up holding."""

    started: float = 0.0
    finished: float = 0.0
    commands: int = 0
    likes: dict[str, int] = field(default_factory=dict)
    comments: dict[str, int] = field(default_factory=dict)
    actions: int = 0


# A bench is a few users making the load of thousands: per-user limits raised far past it (the limiter
# still runs, so its CPU is in the figures). docs/security.md "Limits".
BENCH_LIMITS = {
    "SPAKTOK_RATE_LIMIT_DEFAULT": "10000000/10 seconds",
    "SPAKTOK_RATE_LIMIT_LIKE_TAPS": "1000000000/10 seconds",
    "SPAKTOK_RATE_LIMIT_PURCHASES": "10000000/minute",
}


def start_stack() -> DevStack:
    stack = DevStack(data_dir=Path(tempfile.mkdtemp(prefix="spaktok-bench-")), api_port=free_port(), partitions=4)
    stack.extra_env.update(BENCH_LIMITS)
    with console.status("starting the embedded stack"):
        stack.start()
    return stack


def create_streams(api: str, settings: Settings, n: int, owner: str = "bench-owner") -> list[str]:
    streams = []
    for i in range(n):
        token = mint_token(settings, f"{owner}-{i}")
        r = httpx.post(
            f"{api}/v1/streams",
            json={"title": f"bench {i}", "category": "gaming"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        r.raise_for_status()
        streams.append(r.json()["streamId"])
    return streams


# -- load generators ------------------------------------------------------------------------------


def kafka_load(stack: DevStack, streams: list[str], viewers: int, batches: int, batch_size: int,
               rate: float | None = None) -> Load:
    """Joins one by one, then likes and heartbeats in edge-sized batches, plus comments.

    Unpaced (rate None) it is a burst: the backlog shows the worker's top speed, and the latency
    probe then measures queueing behind it. With `rate` commands/s it is a steady load.
    """
    load = Load(likes=dict.fromkeys(streams, 0), comments=dict.fromkeys(streams, 0))
    # murmur2 keys like the API and the worker: the worker refuses a command that lands on another
    # partition than its aggregate's (before that check, this bench's default partitioner sent a
    # stream's joins and likes to other partitions than its OpenStream)
    producer = Producer({**producer_config(Settings(broker=stack.broker)), "linger.ms": 5})
    now = datetime.now(UTC)
    commands: list[tuple[str, bytes]] = []
    for sid in streams:
        users = [f"v-{sid[-6:]}-{n}" for n in range(viewers)]
        for user in users:
            commands.append((sid, JoinStream(command_id=str(uuid.uuid4()), issued_at=now, actor_id=user,
                                             stream_id=sid, username=user).to_bytes()))
        for b in range(batches):
            likes = [(str(uuid.uuid4()), random.choice(users), random.randint(1, 5)) for _ in range(batch_size)]
            load.likes[sid] += sum(n for _, _, n in likes)
            commands.append((sid, RecordLikes(command_id=str(uuid.uuid4()), issued_at=now, actor_id="edge",
                                              stream_id=sid, likes=likes).to_bytes()))
            beats = [(u, int(time.time() * 1000)) for u in random.sample(users, min(batch_size, len(users)))]
            commands.append((sid, RecordHeartbeats(command_id=str(uuid.uuid4()), issued_at=now, actor_id="edge",
                                                   stream_id=sid, beats=beats).to_bytes()))
            load.actions += batch_size + len(beats)
            user = users[b % len(users)]
            commands.append((sid, SendComment(command_id=str(uuid.uuid4()), issued_at=now, actor_id=f"c{b}-{user}",
                                              stream_id=sid, username=user, text=f"hello {b}").to_bytes()))
            load.comments[sid] += 1
        load.actions += viewers + batches
    random.shuffle(commands)  # interleave streams; per-stream order does not matter for the totals
    load.started = time.monotonic()
    for n, (sid, value) in enumerate(commands):
        if rate is not None:
            ahead = load.started + n / rate - time.monotonic()
            if ahead > 0:
                producer.poll(ahead)
        while True:
            try:
                producer.produce(topics.COMMANDS_STREAMS.name, key=sid, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    load.finished = time.monotonic()
    load.commands = len(commands)
    return load


async def _http_load(api: str, settings: Settings, streams: list[str], viewers: int, seconds: float,
                     concurrency: int) -> Load:
    load = Load(likes=dict.fromkeys(streams, 0), comments=dict.fromkeys(streams, 0))
    tokens = {f"h-{s[-6:]}-{n}": (s, mint_token(settings, f"h-{s[-6:]}-{n}")) for s in streams for n in range(viewers)}
    # aiohttp, not httpx: with httpx the load generator itself used a full core at ~100 requests/s
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(api, connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def call(path: str, token: str, headers: dict[str, str] | None = None, **kw: object) -> int:
            async with semaphore:
                headers = {"Authorization": f"Bearer {token}", **(headers or {})}
                async with client.post(path, headers=headers, **kw) as r:  # type: ignore[arg-type]
                    await r.read()
                    return r.status

        await asyncio.gather(*(call(f"/v1/streams/{s}/viewers", t) for s, t in tokens.values()))
        load.started = time.monotonic()
        stop_at = load.started + seconds
        last_comment: dict[str, float] = {}

        async def viewer(user: str, sid: str, token: str) -> None:
            rng = random.Random(user)
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                roll = rng.random()
                if roll < 0.1 and time.monotonic() - last_comment.get(user, 0) > 2.2:
                    last_comment[user] = time.monotonic()
                    status = await call(f"/v1/streams/{sid}/comments", token, json={"text": f"hi {n}"})
                    if status in (201, 202):
                        load.comments[sid] += 1
                elif roll < 0.3:
                    status = await call(f"/v1/streams/{sid}/heartbeat", token)
                else:
                    taps = rng.randint(1, 5)
                    status = await call(f"/v1/streams/{sid}/likes", token, json={"count": taps},
                                        headers={"Idempotency-Key": f"{user}-{n}"})
                    if status in (200, 202):
                        load.likes[sid] += taps
                if status in (200, 201, 202):
                    load.commands += 1
                    load.actions += 1

        await asyncio.gather(*(viewer(u, s, t) for u, (s, t) in tokens.items()))
        load.finished = time.monotonic()
    return load


def http_load(stack: DevStack, settings: Settings, streams: list[str], viewers: int, seconds: float,
              concurrency: int) -> Load:
    return asyncio.run(_http_load(stack.api_url, settings, streams, viewers, seconds, concurrency))


# -- measurements ---------------------------------------------------------------------------------


class LatencyProbe(threading.Thread):
    """Every 100 ms: a comment over HTTP, then poll Postgres until its row exists."""

    def __init__(self, stack: DevStack, settings: Settings, stream_id: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.settings, self.stream_id = stack, settings, stream_id
        self.samples: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        engine = create_engine(self.stack.postgres_dsn)
        client = httpx.Client(base_url=self.stack.api_url, timeout=30)
        n = 0
        while not self.halt.is_set():
            n += 1
            user = f"probe-{n}"
            marker = f"probe {uuid.uuid4().hex}"
            token = mint_token(self.settings, user)
            sent = time.monotonic()
            r = client.post(f"/v1/streams/{self.stream_id}/comments", json={"text": marker},
                            headers={"Authorization": f"Bearer {token}"})
            if r.status_code not in (201, 202):
                continue
            while time.monotonic() - sent < 60:
                with engine.connect() as conn:
                    found = conn.execute(text("SELECT 1 FROM stream_comments WHERE text = :t"), {"t": marker}).first()
                if found:
                    self.samples.append(time.monotonic() - sent)
                    break
                time.sleep(0.005)
            self.halt.wait(0.1)
        engine.dispose()


def wait_for_postgres(stack: DevStack, load: Load, timeout: float = 300) -> float:
    """Seconds (monotonic) when Postgres holds every like and comment of the load."""
    engine = create_engine(stack.postgres_dsn)
    want = (sum(load.likes.values()), sum(load.comments.values()))
    streams = list(load.likes)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            likes, comments = conn.execute(
                text("SELECT coalesce(sum(likes), 0), coalesce(sum(comments), 0) FROM live_streams"
                     " WHERE stream_id = ANY(:s)"), {"s": streams},
            ).one()
        if (likes, comments) == want:
            engine.dispose()
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"Postgres did not catch up within {timeout:.0f} s: has {(likes, comments)}, want {want}")


def scrape_metrics(api: str) -> str:
    """`/metrics` is for admins (docs/security.md): the bench scrapes it with an admin token."""
    token = mint_token(Settings(), "bench-metrics", roles=["admin"])
    return httpx.get(f"{api}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text


def clickhouse_records(api: str) -> int:
    body = scrape_metrics(api)
    for line in body.splitlines():
        if line.startswith("spaktok_projector_records_total"):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def read_events(broker: str) -> list[tuple[int, dict]]:
    """Every stream event with its append timestamp (ms)."""
    return [(ts, orjson.loads(value)) for ts, value in read_topic(broker, topics.EVENTS_STREAMS.name)[0]]


def read_topic(broker: str, name: str) -> tuple[list[tuple[int, bytes]], float, float]:
    """All records of a topic, and the raw consume rate in records/s and MB/s.

    The topic is read twice by one plain confluent-kafka consumer; the second, timed pass starts on
    a warm connection, so the figure is what the broker delivers, not connection and set-up time.
    """
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"bench-{uuid.uuid4().hex}",
                         "fetch.wait.max.ms": 10})
    parts = consumer.list_topics(name, timeout=10).topics[name].partitions

    def read_all(expected: int | None = None, at_least: int = 0) -> list[tuple[int, bytes]]:
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in parts])
        records: list[tuple[int, bytes]] = []
        quiet_since = time.monotonic()
        # knowing the count, the timed pass never waits out a consume timeout at the end
        while expected is None or len(records) < expected:
            wanted = 10_000 if expected is None else min(10_000, expected - len(records))
            batch = consumer.consume(wanted, timeout=1.0)
            if batch:
                quiet_since = time.monotonic()
            elif len(records) >= at_least or time.monotonic() - quiet_since > 30:
                break  # below the watermarks' count an empty answer is not the end (a busy broker
                # gave one in the middle of a 1 M-record topic, and the read used to stop there)
            records.extend((m.timestamp()[1], m.value()) for m in batch if m.error() is None)
        return records

    marks = [consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10) for p in parts]
    records = read_all(at_least=sum(high - low for low, high in marks))
    started = time.monotonic()
    again = read_all(len(records))
    seconds = time.monotonic() - started
    consumer.close()
    size = sum(len(value) for _, value in again)
    return records, len(again) / seconds, size / seconds / 1e6


def postgres_rows(stack: DevStack) -> int:
    engine = create_engine(stack.postgres_dsn)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT coalesce(sum(rows_written), 0) FROM projection_progress")).scalar_one()
    engine.dispose()
    return int(rows)


def clickhouse_rows(api: str) -> int:
    body = scrape_metrics(api)
    for line in body.splitlines():
        if line.startswith("spaktok_projector_rows_total"):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    # SIGTERM (e.g. `timeout`, `kill`) unwinds like Ctrl-C, so the stack below is stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["kafka", "http"], default="kafka")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--viewers", type=int, default=1000, help="per stream")
    parser.add_argument("--batches", type=int, default=150, help="kafka mode: like/heartbeat batches per stream")
    parser.add_argument("--batch-size", type=int, default=250, help="kafka mode: actions per batch")
    parser.add_argument("--rate", type=float, default=None, help="kafka mode: commands/s (default: one burst)")
    parser.add_argument("--seconds", type=float, default=20, help="http mode: duration")
    parser.add_argument("--concurrency", type=int, default=64, help="http mode: requests in flight")
    args = parser.parse_args()
    if args.mode == "http" and args.viewers == 1000:
        args.viewers = 100

    settings = Settings()
    stack = start_stack()
    try:
        streams = create_streams(stack.api_url, settings, args.streams)
        probe_stream = create_streams(stack.api_url, settings, 1, owner="probe-owner")[0]
        ch_rows_before, pg_rows_before = clickhouse_rows(stack.api_url), postgres_rows(stack)
        probe = LatencyProbe(stack, settings, probe_stream)
        probe.start()
        with console.status(f"{args.mode} load running"):
            if args.mode == "kafka":
                load = kafka_load(stack, streams, args.viewers, args.batches, args.batch_size, args.rate)
            else:
                load = http_load(stack, settings, streams, args.viewers, args.seconds, args.concurrency)
        with Progress(console=console, transient=True) as progress:
            progress.add_task("waiting for the read models to catch up", total=None)
            pg_done = wait_for_postgres(stack, load)
            pg_rows = postgres_rows(stack) - pg_rows_before
            probe.halt.set()
            events = read_events(stack.broker)
            command_records, raw_rate, raw_mb = read_topic(stack.broker, topics.COMMANDS_STREAMS.name)
            mine = [(ts, e) for ts, e in events if e["aggregate_id"] in load.likes]
            total_events = len(events)
            ch_deadline = time.monotonic() + 300
            # every stream event (setup ones included) must be in chDB
            while clickhouse_records(stack.api_url) < total_events and time.monotonic() < ch_deadline:
                time.sleep(0.05)
            ch_done = time.monotonic()
            ch_rows = clickhouse_rows(stack.api_url) - ch_rows_before
        probe.join(60)

        stamps = sorted(ts for ts, _ in mine)
        fold_seconds = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else float("nan")
        decided = sum(1 for _, e in mine)
        messages = len(command_records)
        worker_rate = messages / fold_seconds
        send_seconds = max(load.finished - load.started, 1e-9)
        pg_seconds, ch_seconds = pg_done - load.started, ch_done - load.started
        paced = f", paced at {args.rate:,.0f} commands/s" if args.rate else (", one burst" if args.mode == "kafka" else "")
        table = Table(title=f"spaktok load, mode={args.mode}{paced}, {args.streams} streams, 4 partitions, 1 worker")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_column("notes")
        table.add_row("commands accepted /s", f"{load.commands / send_seconds:,.0f}",
                      f"{load.commands:,} commands in {send_seconds:.1f} s")
        table.add_row("worker: Kafka messages decided /s", f"{worker_rate:,.0f}",
                      f"{messages:,} command records; first to last event append time {fold_seconds:.1f} s")
        table.add_row("worker: user actions folded /s", f"{load.actions / fold_seconds:,.0f}",
                      f"{load.actions:,} joins, taps, beats, comments")
        table.add_row("worker: events written /s", f"{decided / fold_seconds:,.0f}", f"{decided:,} events")
        table.add_row("Postgres projector: events /s", f"{decided / pg_seconds:,.0f}",
                      f"all likes+comments in Postgres {pg_seconds:.1f} s after load start")
        table.add_row("Postgres projector: rows written /s", f"{pg_rows / pg_seconds:,.0f}",
                      f"{pg_rows:,} row writes (projection_progress)")
        table.add_row("ClickHouse projector: events /s", f"{decided / ch_seconds:,.0f}",
                      f"{total_events:,} event rows in chDB {ch_seconds:.1f} s after load start")
        table.add_row("ClickHouse projector: rows written /s", f"{ch_rows / ch_seconds:,.0f}", f"{ch_rows:,} rows")
        table.add_row("command -> read model p50", f"{percentile(probe.samples, 0.5) * 1000:,.0f} ms",
                      f"{len(probe.samples)} comment probes over HTTP every 100 ms, polled in Postgres"
                      + ("; a burst: includes queueing behind the backlog" if args.mode == "kafka" and not args.rate else ""))
        table.add_row("command -> read model p99", f"{percentile(probe.samples, 0.99) * 1000:,.0f} ms", "")
        table.add_row("raw broker consume /s (same run)", f"{raw_rate:,.0f}",
                      f"confluent-kafka reading the same {messages:,} command records ({raw_mb:,.0f} MB/s)")
        table.add_row("worker as a fraction of raw consume", f"{worker_rate / raw_rate:.1%}", "")
        console.print(table)
    finally:
        with console.status("stopping the stack"):
            stack.stop()


if __name__ == "__main__":
    main()


# -- CPU accounting -------------------------------------------------------------------------------


def cpu_seconds(stack: DevStack) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each process of the stack and by this one.

    Postgres runs as a tree of server processes under the launcher; they are summed as "postgres"."""
    import psutil

    result: dict[str, float] = {}
    for name, proc in stack.processes.items():
        try:
            times = psutil.Process(proc.pid).cpu_times()
            result[name] = times.user + times.system
        except psutil.Error:
            continue
    me = psutil.Process(os.getpid())
    own = me.cpu_times()
    result["load generator (this process)"] = own.user + own.system
    postgres = 0.0
    data_dir = str(stack.data_dir.resolve())
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            # the postmaster of this stack (its data dir is ours) and the backends it forked
            if proc.info["name"] != "postgres":
                continue
            root = proc if any(data_dir in arg for arg in proc.info["cmdline"] or ()) else proc.parent()
            if root is None or not any(data_dir in arg for arg in root.cmdline()):
                continue
            times = proc.cpu_times()
            postgres += times.user + times.system
        except psutil.Error:
            continue
    result["postgres"] = postgres
    return result


def cpu_rows(before: dict[str, float], after: dict[str, float], sends: int, seconds: float,
             unit: str = "send") -> list[tuple[str, str]]:
    """Rows for a bench table: per process, cores used over the window and CPU µs per `unit`."""
    rows = []
    total = 0.0
    for name in after:
        used = after[name] - before.get(name, 0.0)
        total += used
        rows.append((f"CPU: {name}", f"{used / seconds:.2f} cores · {used / max(sends, 1) * 1e6:,.0f} µs/{unit}"))
    rows.append(("CPU: all processes",
                 f"{total / seconds:.2f} cores · {total / max(sends, 1) * 1e6:,.0f} µs/{unit}"))
    return rows
