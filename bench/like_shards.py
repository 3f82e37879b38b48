"""A hot stream's likes and heartbeats: decided by the stream itself, or by its shards.

See commands/stream_shards.py.

    python bench/like_shards.py                              # 8 shards, 2 workers, 1 M-user audience
    python bench/like_shards.py --likes 100000 --shards 4    # a shorter run
    python bench/like_shards.py --rate 20000                 # a steady 20,000 actions/s instead of a burst
    python bench/like_shards.py --viewers 1000000 --beats 0.5  # 1 M viewers join; half the actions beat

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
topic holding the counts (the stream's events, or the shards'), read in the same run. The last line
is one JSON object with the headline figures.

With `--viewers N`, N users join the stream first (`JoinViewers` batches of 250 straight into Kafka,
as the API's join batcher sends a busy stream's joins) and the actions come from them; with `--beats F`, a share F of the actions are
heartbeats (`RecordHeartbeats` to the stream, or `RecordShardHeartbeats` to the viewer's shard).
The run then also checks that the stream's document counts exactly N viewers after the joins and
after the load, and that every beat was taken (the beats the log recorded equal the beats sent). The
viewer timeout is set far beyond the run, so nobody leaves: bench/hot_stream.py and the integration
test time viewers out.
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
from typing import Any

import httpx
import orjson
from confluent_kafka import Producer
from load import BENCH_LIMITS, cpu_seconds, create_streams, percentile, read_topic
from rich.console import Console
from rich.table import Table

from spaktok.api.auth import mint_token
from spaktok.commands.stream_shards import RecordShardHeartbeats, RecordShardLikes, shard_of, stream_shard_id
from spaktok.commands.streams import ArrivingViewer, JoinStream, JoinViewers, RecordHeartbeats, RecordLikes
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack, free_port
from spaktok.infra.kafka import producer_config
from spaktok.settings import Settings

console = Console()
JOIN_BATCH = 250  # viewers per `JoinViewers`: a busy stream's joins gathered by the API for 10 ms


def start(shards: int, workers: int) -> DevStack:
    stack = DevStack(
        data_dir=Path(tempfile.mkdtemp(prefix="spaktok-bench-shards-")),
        api_port=free_port(),
        partitions=8,
        workers=workers,
    )
    # nobody times out during the run, and the broadcaster (who sends no heartbeats here) is not
    # taken for gone: with 1 M joins the run outlasts the 5 min grace, and the stream would end
    stack.extra_env.update(
        {
            **BENCH_LIMITS,
            "SPAKTOK_STREAM_LIKE_SHARDS": str(shards),
            "SPAKTOK_VIEWER_TIMEOUT_S": "86400",
            "SPAKTOK_BROADCASTER_GRACE_S": "0",
        }
    )
    with console.status(f"starting a stack ({workers} workers, like shards: {shards or 'none'})"):
        stack.start()
    return stack


class Edge:
    """Sends commands into Kafka as the API's edge batcher would: per stream, or per shard of a hot stream."""

    def __init__(self, stack: DevStack, sid: str, shards: int) -> None:
        config = {**producer_config(Settings(broker=stack.broker)), "linger.ms": 5, "log_level": 2}
        self.producer = Producer(config)  # log_level: quiet when the stack stops under it
        self.sid, self.shards = sid, shards

    def send(self, kind: str, shard: int, items: list) -> None:
        ident = {
            "command_id": str(uuid.uuid4()),
            "issued_at": datetime.now(UTC),
            "actor_id": "edge",
            "stream_id": self.sid,
        }
        if self.shards:
            topic, key = topics.COMMANDS_STREAM_SHARDS.name, stream_shard_id(self.sid, shard)
            make = RecordShardLikes if kind == "likes" else RecordShardHeartbeats
            value = make(**ident, shard=shard, **{kind: items}).to_bytes()
        else:
            topic, key = topics.COMMANDS_STREAMS.name, self.sid
            value = (RecordLikes if kind == "likes" else RecordHeartbeats)(
                **ident, **{kind: items}
            ).to_bytes()
        self.produce(topic, key, value)

    def join(self, user: str) -> None:
        command = JoinStream(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            actor_id=user,
            stream_id=self.sid,
            username=user,
        )
        self.produce(topics.COMMANDS_STREAMS.name, self.sid, command.to_bytes())

    def join_batch(self, users: list[str]) -> None:
        command = JoinViewers(
            command_id=str(uuid.uuid4()),
            issued_at=datetime.now(UTC),
            actor_id="edge",
            stream_id=self.sid,
            viewers=[ArrivingViewer(user_id=u, username=u) for u in users],
        )
        self.produce(topics.COMMANDS_STREAMS.name, self.sid, command.to_bytes())

    def produce(self, topic: str, key: str, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)


def produce(
    edge: Edge, audience: int, actions: int, batch: int, rate: float, beats: float
) -> tuple[int, int]:
    """`actions` likes (1-5 taps) and heartbeats (a share `beats`) from users `u0`..`u<audience>`, in
    edge batches of `batch` per shard: a burst, or `rate` actions/s when rate > 0. Returns (taps, beats)."""
    taps = beat_count = 0
    pending: dict[tuple[str, int], list] = defaultdict(list)
    started = time.monotonic()
    for n in range(actions):
        if rate > 0 and n % 100 == 0:
            ahead = started + n / rate - time.monotonic()
            if ahead > 0:
                edge.producer.poll(ahead)
        user = f"u{random.randrange(audience)}"
        shard = shard_of(user, edge.shards) if edge.shards else 0
        if random.random() < beats:
            beat_count += 1
            key, item = ("beats", shard), (user, int(time.time() * 1000))
        else:
            count = random.randint(1, 5)
            taps += count
            key, item = ("likes", shard), (f"a{n}", user, count)
        pending[key].append(item)
        if len(pending[key]) >= batch:
            edge.send(*key, pending.pop(key))
    for key, items in pending.items():
        edge.send(*key, items)
    edge.producer.flush(120)
    return taps, beat_count


def join_audience(edge: Edge, stack: DevStack, viewers: int, batch: int = JOIN_BATCH) -> float:
    """`viewers` users join in edge batches of `batch` (as the API's join batcher sends a busy
    stream's joins); seconds until the stream's document counts every one of them."""
    started = time.monotonic()
    for first in range(0, viewers, batch):
        edge.join_batch([f"u{n}" for n in range(first, min(viewers, first + batch))])
    edge.producer.flush(120)
    wait_for_document(stack, edge.sid, "viewerCount", viewers, timeout=1800)
    return time.monotonic() - started


def wait_for_document(stack: DevStack, sid: str, field: str, expected: int, timeout: float) -> float:
    """Seconds until the stream's document holds `expected` in `field` (e.g. every like folded)."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {mint_token(Settings(), 'bench-reader')}"}
    while time.monotonic() - started < timeout:
        answer = httpx.get(f"{stack.api_url}/v1/streams/{sid}", headers=headers, timeout=10)
        if answer.status_code != 200:
            raise SystemExit(f"GET /v1/streams/{sid} answered {answer.status_code}: {answer.text}")
        value = answer.json().get(field)
        if value == expected:
            return time.monotonic() - started
        if value is not None and value > expected:
            raise SystemExit(f"the document's {field} is {value}, more than the {expected} sent")
        time.sleep(0.2)
    raise SystemExit(f"the document's {field} did not reach {expected} within {timeout:.0f} s")


def fold_delays(shard_records: list[tuple[int, dict]], stream_records: list[tuple[int, dict]]) -> list[float]:
    """For each shard count: ms from its append to the append of the first fold covering it."""
    folds = sorted(
        ((ts, e["payload"]["totals"]) for ts, e in stream_records if e["type"] == "streams.ShardLikesFolded"),
        key=lambda fold: fold[0],
    )
    delays = []
    for ts, e in shard_records:
        if e["type"] != "stream_shards.ShardLikesRecorded":
            continue
        shard, total = str(e["payload"]["shard"]), e["payload"]["shard_likes"]
        covering = next(
            (f_ts for f_ts, totals in folds if totals.get(shard, 0) >= total and f_ts >= ts), None
        )
        if covering is None:
            covering = next((f_ts for f_ts, totals in folds if totals.get(shard, 0) >= total), None)
        if covering is not None:
            delays.append(float(covering - ts))
    return delays


HELD_SIGNS = (b"keepalive is not responding", b"woke up too late", b"held the event loop")


def loop_stalls(stack: Any) -> dict[str, int]:
    """Per worker log: the lines where Faust says its event loop was held (its keepalive thread
    not answered, a timer woken too late) or the worker logged a batch or a timer's scan that held
    it (`processors/aggregate.py` LONG_BATCH_S): what a long batch does to everything else on the
    worker. The lines are printed, with their times, to be set against the load's window."""
    stalls = {}
    for log in sorted(stack.log_dir.glob("worker*.log")):
        held = [line for line in log.read_bytes().splitlines() if any(sign in line for sign in HELD_SIGNS)]
        stalls[log.stem] = len(held)
        for line in held:
            console.print(f"{log.stem}: {line.decode(errors='replace')[:220]}", highlight=False)
    return stalls


LOAD_EVENTS = ("streams.LikesRecorded", "streams.ShardLikesFolded", "streams.HeartbeatsRecorded")


def run(shards: int, args: argparse.Namespace) -> dict:
    stack = start(shards, args.workers)
    try:
        settings = Settings()
        [sid] = create_streams(stack.api_url, settings, 1, owner=f"hot-{uuid.uuid4().hex[:6]}")
        time.sleep(2.0)  # the shards' open forwards are decided before the burst
        edge = Edge(stack, sid, shards)
        joined_s = 0.0
        if args.viewers:
            with console.status(f"{args.viewers:,} viewers joining"):
                joined_s = join_audience(edge, stack, args.viewers)
        audience = args.viewers or args.audience
        before = cpu_seconds(stack)
        with console.status(f"{args.likes:,} actions from {audience:,} users into Kafka"):
            load_started = datetime.now(UTC)
            taps, beats = produce(edge, audience, args.likes, args.batch, args.rate, args.beats)
        console.print(f"the load: {load_started:%H:%M:%S} to {datetime.now(UTC):%H:%M:%S} UTC", highlight=False)
        with console.status("waiting for the document to hold every like"):
            wait_for_document(stack, sid, "likes", taps, timeout=600)
        after = cpu_seconds(stack)
        if args.viewers:  # nobody left: the count is exactly who joined
            wait_for_document(stack, sid, "viewerCount", args.viewers, timeout=60)
        stream_raw, floor_rate, _ = read_topic(stack.broker, topics.EVENTS_STREAMS.name)
        stream_records = [(ts, orjson.loads(v)) for ts, v in stream_raw]
        stream_records = [(ts, e) for ts, e in stream_records if e["aggregate_id"] == sid]
        shard_records: list[tuple[int, dict]] = []
        if shards:  # the floor: how fast the broker hands out the topic that holds the counts
            raw, floor_rate, _ = read_topic(stack.broker, topics.EVENTS_STREAM_SHARDS.name)
            shard_records = [
                (ts, e)
                for ts, e in ((ts, orjson.loads(v)) for ts, v in raw)
                if e["payload"].get("stream_id") == sid
            ]
        records = shard_records or stream_records
        counting = "stream_shards.ShardLikesRecorded" if shards else "streams.LikesRecorded"
        beating = "stream_shards.ShardHeartbeatsRecorded" if shards else "streams.HeartbeatsRecorded"
        counted = [(ts, e) for ts, e in records if e["type"] in (counting, beating)]
        span_s = max(1e-3, (counted[-1][0] - counted[0][0]) / 1000) if len(counted) > 1 else float("nan")
        stream_events = [e for _, e in stream_records if e["type"] in LOAD_EVENTS]
        worker_cpu = sum(after[n] - before.get(n, 0.0) for n in after if n.startswith("worker"))
        delays = fold_delays(shard_records, stream_records) if shards else []
        return {
            "shards": shards,
            "viewers": args.viewers,
            "joined_s": joined_s,
            "taps": taps,
            "beats": beats,
            "actions": args.likes,
            "counted_taps": sum(e["payload"]["count"] for _, e in counted if e["type"] == counting),
            "counted_beats": sum(e["payload"]["count"] for _, e in counted if e["type"] == beating),
            "actions_per_s": args.likes / span_s,
            "stream_events": len(stream_events),
            "actions_per_stream_event": args.likes / max(1, len(stream_events)),
            "worker_cpu_ms_per_1k": worker_cpu / args.likes * 1e6,
            "fold_delay_ms": {
                "p50": percentile(delays, 0.5),
                "p99": percentile(delays, 0.99),
                "max": max(delays, default=float("nan")),
                "samples": len(delays),
            },
            "broker_floor_records_per_s": floor_rate,
            "loop_stalls": loop_stalls(stack),
        }
    finally:
        with console.status("stopping the stack"):
            stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--audience", type=int, default=1_000_000, help="distinct users acting (without --viewers)"
    )
    parser.add_argument(
        "--viewers", type=int, default=0, help="users who join first; the actions come from them"
    )
    parser.add_argument("--likes", type=int, default=200_000, help="actions in the load")
    parser.add_argument("--beats", type=float, default=0.0, help="share of the actions that are heartbeats")
    parser.add_argument("--batch", type=int, default=250, help="actions per edge batch (per shard)")
    parser.add_argument("--rate", type=float, default=0, help="actions/s offered (0: one burst)")
    parser.add_argument(
        "--sharded-only", action="store_true", help="only the run with shards (half the time at 1 M viewers)"
    )
    args = parser.parse_args()
    results = []
    for k in (args.shards,) if args.sharded_only else (0, args.shards):
        results.append(run(k, args))
        console.print(f"shards={k}:", results[-1])  # kept in the output if a later run fails
    console.print(results_table(args, results))
    exact = all(r["counted_taps"] == r["taps"] and r["counted_beats"] == r["beats"] for r in results)
    if not exact:
        for r in results:
            console.print(
                f"[red]shards={r['shards']}: counted {r['counted_taps']:,} of {r['taps']:,} taps, "
                f"{r['counted_beats']:,} of {r['beats']:,} beats[/red]"
            )
    runs = {"sharded" if r["shards"] else "unsharded": r for r in results}

    def each(figure: str, digits: int | None = 0) -> dict[str, Any]:
        return {mode: r[figure] if digits is None else round(r[figure], digits) for mode, r in runs.items()}

    sys.stdout.write(
        json.dumps(
            {
                "audience": args.viewers or args.audience,
                "viewers_joined": args.viewers,
                "actions": args.likes,
                "beat_share": args.beats,
                "rate": args.rate or "burst",
                "shards": args.shards,
                "actions_per_s": each("actions_per_s"),
                "stream_events": each("stream_events", None),
                "worker_cpu_ms_per_1k": each("worker_cpu_ms_per_1k", 2),
                "fold_delay_ms": runs["sharded"]["fold_delay_ms"],
                "joins_projected_s": each("joined_s", 1),
                "exact": exact,
            }
        )
        + "\n"
    )
    if not exact:
        raise SystemExit(1)


def results_table(args: argparse.Namespace, results: list[dict]) -> Table:
    offered = f"at {args.rate:,.0f}/s" if args.rate else "in one burst"
    who = f"{args.viewers:,} joined viewers" if args.viewers else f"{args.audience:,} users"
    table = Table(
        title=f"{args.likes:,} actions ({args.beats:.0%} heartbeats) {offered} from {who}, "
        f"{args.workers} workers"
    )
    table.add_column("")
    for r in results:
        table.add_column(
            "stream decides itself" if not r["shards"] else f"{r['shards']} shards", justify="right"
        )
    rows = [
        ("viewers joined · seconds until counted", lambda r: f"{r['viewers']:,} · {r['joined_s']:.1f} s"),
        ("taps sent · counted", lambda r: f"{r['taps']:,} · {r['counted_taps']:,}"),
        ("heartbeats sent · taken", lambda r: f"{r['beats']:,} · {r['counted_beats']:,}"),
        ("actions/s decided", lambda r: f"{r['actions_per_s']:,.0f}"),
        ("stream aggregate events for them", lambda r: f"{r['stream_events']:,}"),
        ("actions per stream event", lambda r: f"{r['actions_per_stream_event']:,.0f}"),
        ("worker CPU per 1,000 actions", lambda r: f"{r['worker_cpu_ms_per_1k']:.1f} ms"),
        (
            "fold delay p50 · p99 · max",
            lambda r: (
                "-"
                if not r["shards"]
                else " · ".join(f"{r['fold_delay_ms'][q]:.0f}" for q in ("p50", "p99", "max")) + " ms"
            ),
        ),
        ("worker log lines of a held event loop", lambda r: " · ".join(map(str, r["loop_stalls"].values()))),
        (
            "floor: broker consume rate of the counts",
            lambda r: f"{r['broker_floor_records_per_s']:,.0f} records/s",
        ),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(r) for r in results))
    return table


if __name__ == "__main__":
    main()
