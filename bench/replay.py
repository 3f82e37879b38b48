"""Replay speed: `spaktok replay` rebuilding every Postgres read model from N events in the log.

    python bench/replay.py                 # 1,000,000 events
    python bench/replay.py --events 200000

Starts a broker and Postgres only (no worker, projector or API: nothing else competes for the two
cores; the ClickHouse rebuild runs on chDB in this process, as the API would run it), produces N events of a realistic mix straight to the event topics (the project's producer
settings: murmur2 keys, so every aggregate lands where the worker would put it), measures the raw
broker consume rate of those records in the same run, then runs `spaktok replay` as a
subprocess (Postgres), then the ClickHouse rebuild, and prints one table. (No live projector runs here, so there is nothing to `--verify`
against: tests/integration/test_replay.py proves equality; this measures speed.)

The mix, per Kafka message, follows what the worker writes after the API's edge batching: viewer
joins and leaves, heartbeat and like batches (a few dozen users each), comments, gifts (a stream's
GiftReceived with the wallet's GiftDebited and the earnings' EarningsCredited), coin purchases,
follows, and each stream's start and end.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from rich.console import Console
from rich.table import Table
from spaktok.commands.gifts import load_catalog
from spaktok.events import broadcasters, earnings, streams, wallets
from spaktok.events.envelope import TYPE_HEADER, decode_envelope
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack, free_port
from spaktok.infra.kafka import producer_config
from spaktok.projections import postgres
from spaktok.projections.clickhouse import ClickHouse
from spaktok.projections.clickhouse import apply_schema as apply_clickhouse_schema
from spaktok.projections.replay_clickhouse import ClickHouseReplay
from spaktok.settings import Settings

console = Console()
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)
TOPIC_BY_AGGREGATE = {
    "stream": topics.EVENTS_STREAMS.name,
    "wallet": topics.EVENTS_WALLETS.name,
    "earnings": topics.EVENTS_EARNINGS.name,
    "broadcaster": topics.EVENTS_BROADCASTERS.name,
}


class Log:
    """Builds envelopes with gap-free sequences per aggregate and produces them."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.sequences: Counter[str] = Counter()
        self.count: Counter[str] = Counter()
        self.checked = 0

    def emit(self, cls: type, aggregate_id: str, at: datetime, actor: str, **payload: object) -> None:
        aggregate = cls.aggregate_type  # type: ignore[attr-defined]
        key = f"{aggregate}:{aggregate_id}"
        self.sequences[key] += 1
        kind = cls.model_fields["type"].default  # type: ignore[attr-defined]
        envelope = {
            "event_id": str(uuid.uuid4()),
            "type": kind,
            "schema_version": cls.schema_version,  # type: ignore[attr-defined]
            "aggregate_type": aggregate,
            "aggregate_id": aggregate_id,
            "sequence": self.sequences[key],
            "occurred_at": at,
            "causation_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
            "actor_id": actor,
            "payload": payload,
        }
        value = orjson.dumps(envelope)
        if self.checked < 2000:  # the first events prove the generator writes what the log holds
            decode_envelope(value).event()
            self.checked += 1
        while True:
            try:
                self.producer.produce(
                    TOPIC_BY_AGGREGATE[aggregate], value, aggregate_id.encode(), headers=[(TYPE_HEADER, kind)]
                )
                break
            except BufferError:
                self.producer.poll(0.05)
        self.count[kind] += 1


def generate(log: Log, total: int, seed: int = 7) -> None:
    """About `total` events: streams of ~500 events each, run one after another in event time."""
    rng = random.Random(seed)
    catalog = list(load_catalog().values())
    users = [f"u{n}" for n in range(50_000)]
    balances: dict[str, int] = {}
    earned: Counter[str] = Counter()
    n_stream = 0
    clock = EPOCH
    while sum(log.count.values()) < total:
        n_stream += 1
        host = f"host{n_stream % 400}"
        sid = f"st_bench{n_stream}"
        clock += timedelta(seconds=7)
        at = clock
        log.emit(
            streams.StreamStarted, sid, at, host, stream_id=sid, user_id=host, username=host, title=f"bench {n_stream}",
            category="gaming", tags=["bench"], language="en", privacy="public", is_recorded=False,
            allow_comments=True, allow_gifts=True, is_age_restricted=False, is_premium=n_stream % 3 == 0,
            quality="auto", ingest_url=f"rtmp://ingest/{sid}", playback_url=f"https://play/{sid}.m3u8",
            started_at=at,
        )
        active: list[str] = []
        watched: dict[str, datetime] = {}
        seen: set[str] = set()
        peak = views = likes = comments = gifts = revenue = 0
        gifters: Counter[str] = Counter()
        stream_seq_base = 1
        for _ in range(500):
            at += timedelta(milliseconds=rng.randint(50, 400))
            roll = rng.random()
            if roll < 0.16 or not active:
                user = rng.choice(users)
                if user in watched:
                    continue
                watched[user] = at
                active.append(user)
                views += user not in seen
                seen.add(user)
                peak = max(peak, len(active))
                log.emit(
                    streams.ViewerJoined, sid, at, user, user_id=user, username=user, joined_at=at,
                    viewer_count=len(active), peak_viewer_count=peak, total_views=views,
                )
            elif roll < 0.24:
                user = active.pop(rng.randrange(len(active)))
                joined = watched.pop(user)
                log.emit(
                    streams.ViewerLeft, sid, at, user, user_id=user, left_at=at,
                    watch_time=int((at - joined).total_seconds()), reason="left", viewer_count=len(active),
                )
            elif roll < 0.40:
                beats = {u: at for u in rng.sample(active, min(len(active), rng.randint(5, 40)))}
                log.emit(streams.HeartbeatsRecorded, sid, at, host, beats=beats, count=len(beats),
                         viewer_count=len(active))
            elif roll < 0.56:
                batch = {u: rng.randint(1, 15) for u in rng.sample(active, min(len(active), rng.randint(5, 40)))}
                likes += sum(batch.values())
                log.emit(streams.LikesRecorded, sid, at, host, likes=batch, count=sum(batch.values()),
                         total_likes=likes, recorded_at=at, action_ids=[])
            elif roll < 0.86:
                user = rng.choice(active)
                comments += 1
                log.emit(
                    streams.CommentPosted, sid, at, user, comment_id=str(uuid.uuid4()), user_id=user, username=user,
                    text=f"comment {comments} from {user}", posted_at=at, comments=comments,
                )
            elif roll < 0.97:
                user = rng.choice(active)
                gift = rng.choice(catalog[:6])
                count = rng.randint(1, 3)
                cost = gift.coin_cost * count
                if balances.get(user, 0) < cost:
                    balances[user] = balances.get(user, 0) + 10_000
                    log.emit(wallets.CoinsPurchased, user, at, "admin", payment_ref=str(uuid.uuid4()),
                             coins=10_000, balance=balances[user], purchased_at=at)
                balances[user] -= cost
                tx = f"{user}:{log.sequences['wallet:' + user] + 1}"
                log.emit(
                    wallets.GiftDebited, user, at, user, gift_tx=tx, seq=log.sequences["wallet:" + user] + 1,
                    send_id=str(uuid.uuid4()), stream_id=sid, gift_id=gift.gift_id, count=count, coins=cost,
                    balance=balances[user], debited_at=at,
                )
                premium = n_stream % 3 == 0
                share = cost * (9 if premium else 5) // 10
                gifts += count
                revenue += cost
                gifters[user] += cost
                log.emit(
                    streams.GiftReceived, sid, at, user, gift_tx=tx, wallet_seq=1, sender_id=user,
                    sender_username=user, receiver_id=host, receiver_username=host, gift_id=gift.gift_id,
                    gift_name=gift.name, gift_image_url=gift.image_url, gift_animation_url=gift.animation_url,
                    count=count, coin_cost=cost, real_value_usd=f"{cost / 100:.2f}", broadcaster_share=share,
                    platform_share=cost - share, is_premium_broadcaster=premium,
                    revenue_rule="premium-90" if premium else "standard-50", is_combo=False, combo_id=tx,
                    combo_count=1, sender_total_coins=gifters[user], gifts=gifts, gift_revenue=revenue,
                    sent_at=at,
                )
                earned[host] += share
                log.emit(
                    earnings.EarningsCredited, host, at, user, stream_id=sid,
                    stream_sequence=log.sequences["stream:" + sid], gift_tx=tx, sender_id=user, coins=share,
                    balance=earned[host], credited_at=at,
                )
            else:
                user = rng.choice(users)
                log.emit(broadcasters.UserFollowed, user, at, user, followee_id=host, followed_at=at)
            stream_seq_base += 1
        log.emit(
            streams.StreamEnded, sid, at, host, ended_at=at, reason="ended",
            duration=int((at - clock).total_seconds()), peak_viewer_count=peak, total_views=views, likes=likes,
            comments=comments, gifts=gifts, gift_revenue=revenue,
        )
        log.producer.poll(0)
        clock = at


def raw_consume_rate(broker: str, expected: int) -> tuple[float, float]:
    """One plain confluent-kafka consumer reading every event record: records/s and MB/s."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"bench-{uuid.uuid4().hex}",
                         "fetch.wait.max.ms": 10, "queued.max.messages.kbytes": 262144})
    names = [spec.name for spec in topics.EVENT_TOPICS]
    metadata = consumer.list_topics(timeout=10)
    consumer.assign([TopicPartition(n, p, OFFSET_BEGINNING) for n in names for p in metadata.topics[n].partitions])
    consumer.consume(1, timeout=5)  # warm the connection: count what the broker delivers, not set-up
    got, size = 1, 0
    started = time.monotonic()
    while got < expected:
        batch = consumer.consume(min(10_000, expected - got), timeout=2.0)
        if not batch:
            break
        for m in batch:
            if m.error() is None:
                got += 1
                size += len(m.value())
    seconds = time.monotonic() - started
    consumer.close()
    return got / seconds, size / seconds / 1e6


def clickhouse_child(broker: str, directory: str, out: str) -> None:
    """The ClickHouse rebuild in its own process, as the API process runs it for `spaktok replay`."""
    ch = ClickHouse(f"chdb://{directory}")
    apply_clickhouse_schema(ch)  # the live (empty) tables the rebuild is exchanged with
    started = time.monotonic()
    replay = ClickHouseReplay(ch, broker)
    replay.create()
    replay.build()
    replay.switch()
    seconds = time.monotonic() - started
    s = replay.stats
    replay.close()
    ch.close()
    Path(out).write_text(json.dumps({"records": s.records, "seconds": seconds, "seconds_read": s.seconds_read,
                                     "seconds_apply": s.seconds_apply, "seconds_switch": s.seconds_switch}))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--clickhouse-child":
        clickhouse_child(*sys.argv[2:])
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=20_000, help="events per replay transaction")
    args = parser.parse_args()
    stack = DevStack(data_dir=Path(tempfile.mkdtemp(prefix="spaktok-bench-")), api_port=free_port(), partitions=4)
    try:
        with console.status("starting the broker and Postgres"):
            stack.start_broker()
            stack.start_postgres()
            stack.reset_read_models()
            settings = Settings(broker=stack.broker, postgres_dsn=stack.postgres_dsn, partitions=4)
            topics.ensure_topics(settings)
            engine = postgres.make_engine(stack.postgres_dsn)
            postgres.apply_schema(engine)  # the live schema the replay switches away from
            engine.dispose()
        config = {**producer_config(settings), "linger.ms": 20, "batch.size": 1 << 20,
                  "queue.buffering.max.messages": 500_000}
        log = Log(Producer(config))
        with console.status(f"producing {args.events:,} events"):
            started = time.monotonic()
            generate(log, args.events)
            log.producer.flush(120)
            produce_s = time.monotonic() - started
        total = sum(log.count.values())
        with console.status("raw broker consume rate"):
            raw_rate, raw_mb = raw_consume_rate(stack.broker, total)
        stats_file = stack.data_dir / "replay-stats.json"
        ch_file = stack.data_dir / "replay-clickhouse.json"
        env = {**stack.env(), "COLUMNS": "200"}
        started = time.monotonic()
        # as `spaktok replay --api` runs it: ClickHouse rebuilt in another process (the API's) meanwhile
        ch_child = subprocess.Popen([sys.executable, __file__, "--clickhouse-child", stack.broker,
                                     str((stack.data_dir / "clickhouse").resolve()), str(ch_file)])
        done = subprocess.run(
            [sys.executable, "-m", "spaktok.cli", "replay", "--no-clickhouse", "--chunk", str(args.chunk),
             "--stats-file", str(stats_file)],
            env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        pg_wall_s = time.monotonic() - started
        ch_child.wait()
        replay_s = time.monotonic() - started
        console.print(done.stdout)
        if done.returncode != 0:
            console.print(done.stderr[-3000:])
            sys.exit(1)
        stats = json.loads(stats_file.read_text())
        ch_stats = json.loads(ch_file.read_text())
    finally:
        stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)  # a million events of Postgres and chDB

    mix = ", ".join(f"{k.split('.')[-1]} {v / total:.0%}" for k, v in log.count.most_common())
    table = Table(title=f"spaktok replay: {total:,} events into every read model (Postgres and ClickHouse)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("events in the log", f"{total:,}  (produced in {produce_s:.1f} s, {total / produce_s:,.0f}/s)")
    table.add_row("**both stores rebuilt and switched, wall time**",
                  f"{replay_s:.1f} s → {total / replay_s:,.0f} events/s  (Postgres and ClickHouse side by side)")
    table.add_row("`spaktok replay` (Postgres) wall time", f"{pg_wall_s:.1f} s (process start to exit)")
    table.add_row("Postgres replay events/s (log → switched read models)", f"{total / stats['seconds']:,.0f}")
    table.add_row("  seconds: total / reading Kafka / applying / switch",
                  f"{stats['seconds']:.1f} / {stats['seconds_read']:.1f} / {stats['seconds_apply']:.1f}"
                  f" / {stats['seconds_switch']:.2f}")
    table.add_row("  Postgres row writes (as the live projector counts them) /s",
                  f"{stats['rows'] / stats['seconds']:,.0f}  ({stats['rows']:,})")
    table.add_row("  Postgres rows copied (final rows) /s",
                  f"{stats['rows_copied'] / stats['seconds']:,.0f}  ({stats['rows_copied']:,})")
    table.add_row("ClickHouse (chDB) replay events/s",
                  f"{ch_stats['records'] / ch_stats['seconds']:,.0f}  ({ch_stats['seconds']:.1f} s: read "
                  f"{ch_stats['seconds_read']:.1f}, decode+insert {ch_stats['seconds_apply']:.1f}, exchange "
                  f"{ch_stats['seconds_switch']:.2f})")
    table.add_row("raw broker consume, same records /s", f"{raw_rate:,.0f}  ({raw_mb:,.1f} MB/s)")
    table.add_row("replay as a fraction of raw consume", f"{total / stats['seconds'] / raw_rate:.1%}")
    console.print(table)
    console.print(f"mix: {mix}", highlight=False)


if __name__ == "__main__":
    main()
