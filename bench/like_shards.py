"""A hot stream's likes: counted by the stream itself, or by its like shards (commands/stream_shards.py).

    python bench/like_shards.py                              # 8 shards, 2 workers, 1 M-user audience
    python bench/like_shards.py --likes 100000 --shards 4    # a shorter run
    python bench/like_shards.py --rate 20000                 # a steady 20,000 actions/s instead of a burst

Two runs of the same burst, each on a fresh embedded stack with two workers: one stream that counts
its likes itself (`RecordLikes` on its one partition), and one opened with K like shards
(`SPAKTOK_STREAM_LIKE_SHARDS=K`: `RecordShardLikes` on K aggregates spread over the partitions, each
folding its running total into the stream). The likes come from an audience of `--audience` distinct
users, in edge-sized batches, every action id unique, produced straight into Kafka as the API's edge
batcher would (the API is not what is measured here: bench/load.py is).

It prints, per run: likes/s decided (from the append timestamps of the events that counted them),
the stream aggregate's events for those likes (one per like batch unsharded; one fold per shard batch
sharded, however many likes each covers), worker CPU per 1,000 likes, the fold delay (append time of
a shard's count to the append time of the stream's fold that covers it: p50, p99, max), and that the
stream's document ends at exactly the likes sent. The floor is the broker's raw consume rate of the
topic holding the counts (the stream's events, or the shards'), read in the same run. The last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from load import BENCH_LIMITS, cpu_seconds, create_streams, percentile, read_topic
from spaktok.api.auth import mint_token
from spaktok.commands.stream_shards import RecordShardLikes, shard_of, stream_shard_id
from spaktok.commands.streams import RecordLikes
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack, free_port
from spaktok.infra.kafka import producer_config
from spaktok.settings import Settings

console = Console()


def start(shards: int, workers: int) -> DevStack:
    stack = DevStack(data_dir=Path(tempfile.mkdtemp(prefix="spaktok-bench-shards-")), api_port=free_port(),
                     partitions=8, workers=workers)
    stack.extra_env.update({**BENCH_LIMITS, "SPAKTOK_STREAM_LIKE_SHARDS": str(shards)})
    with console.status(f"starting a stack ({workers} workers, like shards: {shards or 'none'})"):
        stack.start()
    return stack


def produce(stack: DevStack, sid: str, shards: int, audience: int, likes: int, batch: int, rate: float) -> int:
    """`likes` like actions of 1-5 taps in batches of `batch`, grouped per shard as the edge batcher
    groups them: a burst, or `rate` actions/s when rate > 0. Returns the taps sent."""
    producer = Producer({**producer_config(Settings(broker=stack.broker)), "linger.ms": 5})
    now = datetime.now(UTC)
    taps = 0
    pending: dict[int, list[tuple[str, str, int]]] = defaultdict(list)

    def send(shard: int, items: list[tuple[str, str, int]]) -> None:
        ident = {"command_id": str(uuid.uuid4()), "issued_at": now, "actor_id": "edge", "stream_id": sid}
        if shards:
            topic, key = topics.COMMANDS_STREAM_SHARDS.name, stream_shard_id(sid, shard)
            value = RecordShardLikes(**ident, shard=shard, likes=items).to_bytes()
        else:
            topic, key, value = topics.COMMANDS_STREAMS.name, sid, RecordLikes(**ident, likes=items).to_bytes()
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)

    started = time.monotonic()
    for n in range(likes):
        if rate > 0 and n % 100 == 0:
            ahead = started + n / rate - time.monotonic()
            if ahead > 0:
                producer.poll(ahead)
        user = f"u{random.randrange(audience)}"
        count = random.randint(1, 5)
        taps += count
        shard = shard_of(user, shards) if shards else 0
        pending[shard].append((f"a{n}", user, count))
        if len(pending[shard]) >= batch:
            send(shard, pending.pop(shard))
    for shard, items in pending.items():
        send(shard, items)
    producer.flush(120)
    return taps


def wait_for_total(stack: DevStack, sid: str, taps: int, timeout: float) -> float:
    """Seconds until the stream's document holds every tap (the fold reached Postgres)."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {mint_token(Settings(), 'bench-reader')}"}
    while time.monotonic() - started < timeout:
        answer = httpx.get(f"{stack.api_url}/v1/streams/{sid}", headers=headers, timeout=10)
        if answer.status_code != 200:
            raise SystemExit(f"GET /v1/streams/{sid} answered {answer.status_code}: {answer.text}")
        likes = answer.json().get("likes")
        if likes == taps:
            return time.monotonic() - started
        if likes is not None and likes > taps:
            raise SystemExit(f"the document counts {likes} likes, more than the {taps} sent")
        time.sleep(0.2)
    raise SystemExit(f"the document did not reach {taps} likes within {timeout:.0f} s")


def fold_delays(shard_records: list[tuple[int, dict]], stream_records: list[tuple[int, dict]]) -> list[float]:
    """For each shard count: ms from its append to the append of the first fold covering it."""
    folds = sorted(((ts, e["payload"]["totals"]) for ts, e in stream_records
                    if e["type"] == "streams.ShardLikesFolded"), key=lambda fold: fold[0])
    delays = []
    for ts, e in shard_records:
        if e["type"] != "stream_shards.ShardLikesRecorded":
            continue
        shard, total = str(e["payload"]["shard"]), e["payload"]["shard_likes"]
        covering = next((f_ts for f_ts, totals in folds if totals.get(shard, 0) >= total and f_ts >= ts), None)
        if covering is None:
            covering = next((f_ts for f_ts, totals in folds if totals.get(shard, 0) >= total), None)
        if covering is not None:
            delays.append(float(covering - ts))
    return delays


def run(shards: int, workers: int, audience: int, likes: int, batch: int, rate: float) -> dict:
    stack = start(shards, workers)
    try:
        settings = Settings()
        [sid] = create_streams(stack.api_url, settings, 1, owner=f"hot-{uuid.uuid4().hex[:6]}")
        time.sleep(2.0)  # the shards' open forwards are decided before the burst
        before = cpu_seconds(stack)
        with console.status(f"{likes:,} like actions from {audience:,} users into Kafka"):
            taps = produce(stack, sid, shards, audience, likes, batch, rate)
        with console.status("waiting for the document to hold every like"):
            wait_for_total(stack, sid, taps, timeout=600)
        after = cpu_seconds(stack)
        stream_raw, floor_rate, _ = read_topic(stack.broker, topics.EVENTS_STREAMS.name)
        stream_records = [(ts, orjson.loads(v)) for ts, v in stream_raw]
        stream_records = [(ts, e) for ts, e in stream_records if e["aggregate_id"] == sid]
        shard_records: list[tuple[int, dict]] = []
        if shards:  # the floor: how fast the broker hands out the topic that holds the counts
            raw, floor_rate, _ = read_topic(stack.broker, topics.EVENTS_STREAM_SHARDS.name)
            shard_records = [(ts, e) for ts, e in ((ts, orjson.loads(v)) for ts, v in raw)
                             if e["payload"].get("stream_id") == sid]
        counting = "stream_shards.ShardLikesRecorded" if shards else "streams.LikesRecorded"
        counted = [(ts, e) for ts, e in (shard_records or stream_records) if e["type"] == counting]
        span_s = max(1e-3, (counted[-1][0] - counted[0][0]) / 1000) if len(counted) > 1 else float("nan")
        stream_events = [e for _, e in stream_records
                         if e["type"] in ("streams.LikesRecorded", "streams.ShardLikesFolded")]
        worker_cpu = sum(after[n] - before.get(n, 0.0) for n in after if n.startswith("worker"))
        delays = fold_delays(shard_records, stream_records) if shards else []
        return {
            "shards": shards,
            "taps": taps,
            "actions": likes,
            "counted_taps": sum(e["payload"]["count"] for _, e in counted),
            "likes_per_s": likes / span_s,
            "stream_events": len(stream_events),
            "actions_per_stream_event": likes / max(1, len(stream_events)),
            "worker_cpu_ms_per_1k": worker_cpu / likes * 1e6,
            "fold_delay_ms": {"p50": percentile(delays, 0.5), "p99": percentile(delays, 0.99),
                              "max": max(delays, default=float("nan")), "samples": len(delays)},
            "broker_floor_records_per_s": floor_rate,
        }
    finally:
        with console.status("stopping the stack"):
            stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--audience", type=int, default=1_000_000, help="distinct users liking")
    parser.add_argument("--likes", type=int, default=200_000, help="like actions in the burst")
    parser.add_argument("--batch", type=int, default=250, help="actions per edge batch (per shard)")
    parser.add_argument("--rate", type=float, default=0, help="actions/s offered (0: one burst)")
    args = parser.parse_args()
    results = [run(k, args.workers, args.audience, args.likes, args.batch, args.rate) for k in (0, args.shards)]
    offered = f"at {args.rate:,.0f}/s" if args.rate else "in one burst"
    table = Table(title=f"{args.likes:,} like actions {offered} from {args.audience:,} users, {args.workers} workers")
    table.add_column("")
    for r in results:
        table.add_column("stream counts itself" if not r["shards"] else f"{r['shards']} like shards", justify="right")
    rows = [
        ("taps sent · counted", lambda r: f"{r['taps']:,} · {r['counted_taps']:,}"),
        ("like actions/s decided", lambda r: f"{r['likes_per_s']:,.0f}"),
        ("stream aggregate events for them", lambda r: f"{r['stream_events']:,}"),
        ("like actions per stream event", lambda r: f"{r['actions_per_stream_event']:,.0f}"),
        ("worker CPU per 1,000 actions", lambda r: f"{r['worker_cpu_ms_per_1k']:.1f} ms"),
        ("fold delay p50 · p99 · max", lambda r: "-" if not r["shards"] else
            f"{r['fold_delay_ms']['p50']:.0f} · {r['fold_delay_ms']['p99']:.0f} · {r['fold_delay_ms']['max']:.0f} ms"),
        ("floor: broker consume rate of the counts", lambda r: f"{r['broker_floor_records_per_s']:,.0f} records/s"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(r) for r in results))
    console.print(table)
    for r in results:
        if r["counted_taps"] != r["taps"]:
            console.print(f"[red]shards={r['shards']}: counted {r['counted_taps']} taps of {r['taps']}[/red]")
    sharded, plain = results[1], results[0]
    sys.stdout.write(json.dumps({
        "audience": args.audience,
        "actions": args.likes,
        "rate": args.rate or "burst",
        "shards": args.shards,
        "likes_per_s": {"unsharded": round(plain["likes_per_s"]), "sharded": round(sharded["likes_per_s"])},
        "stream_events": {"unsharded": plain["stream_events"], "sharded": sharded["stream_events"]},
        "worker_cpu_ms_per_1k": {"unsharded": round(plain["worker_cpu_ms_per_1k"], 2),
                                  "sharded": round(sharded["worker_cpu_ms_per_1k"], 2)},
        "fold_delay_ms": sharded["fold_delay_ms"],
        "exact": all(r["counted_taps"] == r["taps"] for r in results),
    }) + "\n")


if __name__ == "__main__":
    main()
