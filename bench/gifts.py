"""Gift throughput on the embedded stack, end to end: HTTP → debit → delivery → credit → projections.

    python bench/gifts.py                       # 256 requests in flight for 20 s over HTTP
    python bench/gifts.py --mode kafka --sends 20000   # SendGift commands straight into Kafka
    python bench/gifts.py --mode kafka --bundle 1      # ... each command a record of its own

It starts its own dev stack, opens live streams (half with premium broadcasters), gives every sender
coins, sends gifts and measures:

- gift sends/s and gifts/s answered over HTTP (a send of `count` gifts is one request), and the
  request latency p50/p99 (the answer waits for the debit and the stream's decision),
- the worker: gifts taken per second by the stream aggregates (append times of GiftReceived) and
  credits per second by the earnings aggregates,
- end to end: the gifts taken divided by the time from the first send until Postgres holds every
  gift row and every earnings credit,
- the raw broker consume rate of the stream events, measured in the same run,
- the floor: `GET /healthz` answered/s on the same stack just before (bench/http_floor.py's load),
- and that `spaktok ledger check` finds every coin accounted for afterwards.

Its last line is one JSON object: sends_per_s (end to end), healthz_per_s, their ratio,
cpu_ms_per_send (all processes), p50_ms/p99_ms, ledger_ok.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import orjson
from confluent_kafka import Producer
import http_floor
from load import console, cpu_rows, cpu_seconds, percentile, read_topic, start_stack
from rich.table import Table
from spaktok.api.auth import mint_token
from spaktok.commands.gifts import load_catalog
from spaktok.commands.wallets import SendGift
from spaktok.infra import bundles, topics
from spaktok.infra.devstack import DevStack
from spaktok.infra.kafka import producer_config
from spaktok.projections import ledger
from spaktok.settings import Settings
from sqlalchemy import create_engine, text

GIFTS = ("rose", "finger-heart", "perfume", "doughnut", "hand-hearts", "corgi")
COINS_EACH = 5_000_000


async def _setup(api: str, settings: Settings, streams: int, senders: int) -> tuple[list[str], list[str]]:
    admin = mint_token(settings, "bench-admin", roles=["admin"])
    async with aiohttp.ClientSession(api, timeout=aiohttp.ClientTimeout(total=60)) as client:
        stream_ids = []
        for i in range(streams):
            token = mint_token(settings, f"bench-host-{i}", premium=i % 2 == 1)
            async with client.post("/v1/streams", json={"title": f"gifts {i}", "category": "music"},
                                   headers={"Authorization": f"Bearer {token}"}) as r:
                stream_ids.append((await r.json())["streamId"])
        users = [f"bench-fan-{n}" for n in range(senders)]
        semaphore = asyncio.Semaphore(64)

        async def buy(user: str) -> None:
            async with semaphore:
                body = {"userId": user, "coins": COINS_EACH, "paymentRef": f"bench-{user}"}
                async with client.post("/v1/wallet/purchases", json=body,
                                       headers={"Authorization": f"Bearer {admin}"}) as r:
                    assert r.status in (201, 202), await r.text()

        await asyncio.gather(*(buy(u) for u in users))
    return stream_ids, users


async def _http_gifts(api: str, settings: Settings, streams: list[str], users: list[str], seconds: float,
                      concurrency: int) -> dict[str, float]:
    tokens = {u: mint_token(settings, u, name=u) for u in users}
    stats = {"sends": 0, "gifts": 0, "taken": 0, "pending": 0, "other": 0}
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(api, connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as client:
        started = time.monotonic()
        stop_at = started + seconds

        async def sender(worker: int) -> None:
            rng = random.Random(worker)
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                user = rng.choice(users)
                count = rng.randint(1, 3)
                body = {"giftId": rng.choice(GIFTS), "count": count}
                headers = {"Authorization": f"Bearer {tokens[user]}", "Idempotency-Key": f"{worker}-{n}"}
                t0 = time.monotonic()
                async with client.post(f"/v1/streams/{rng.choice(streams)}/gifts", json=body, headers=headers) as r:
                    await r.read()
                    status = r.status
                latencies.append(time.monotonic() - t0)
                stats["sends"] += 1
                if status == 200:
                    stats["taken"] += 1
                    stats["gifts"] += count
                elif status == 202:
                    stats["pending"] += 1
                else:
                    stats["other"] += 1

        await asyncio.gather(*(sender(w) for w in range(concurrency)))
        stats["seconds"] = time.monotonic() - started
        stats["started"] = started
    stats["p50"] = percentile(latencies, 0.5) * 1000
    stats["p99"] = percentile(latencies, 0.99) * 1000
    return stats


def kafka_gifts(stack: DevStack, streams: list[str], users: list[str], sends: int, bundle: int) -> dict[str, float]:
    """SendGift commands produced straight onto the wallet topic (the API out of the way).

    With `bundle` > 1 they travel as the API sends them under load: in bundles of up to that many
    commands per wallet partition (infra/bundles.py); with 1, each command is a record of its own."""
    catalog = load_catalog()
    # the project's producer settings: murmur2 keys, like the worker (the worker refuses a command
    # that lands on another partition than its aggregate's)
    config = {**producer_config(Settings(broker=stack.broker)), "linger.ms": 5, "batch.size": 1 << 20}
    producer = Producer(config)
    rng = random.Random(3)
    partitions = topics.partition_counts(Settings(broker=stack.broker))[topics.COMMANDS_WALLETS.name]
    pending: dict[int, list[SendGift]] = {}

    def flush(partition: int) -> None:
        commands = pending.pop(partition)
        value, kind = bundles.pack([c.to_bytes() for c in commands], commands[0].type)
        producer.produce(topics.COMMANDS_WALLETS.name, value, commands[0].user_id.encode(),
                         partition=partition, headers=[("command-type", kind.encode())])

    started = time.monotonic()
    for n in range(sends):
        user = rng.choice(users)
        command = SendGift(
            command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), actor_id=user, user_id=user,
            stream_id=rng.choice(streams), sender_name=user, gift=catalog[rng.choice(GIFTS)],
            count=rng.randint(1, 3), coin_value_usd="0.01", combo_window_ms=5000,
        )
        partition = bundles.partition_for(user, partitions)
        pending.setdefault(partition, []).append(command)
        if len(pending[partition]) >= bundle:
            flush(partition)
        if n % 1000 == 0:
            producer.poll(0)
    for partition in list(pending):
        flush(partition)
    producer.flush(60)
    return {"sends": sends, "seconds": time.monotonic() - started, "started": started}


def wait_projected(stack: DevStack, started: float, expected: int, timeout: float = 900) -> tuple[int, int, float]:
    """Until Postgres holds `expected` gift rows and as many gift credits (every send was paid for,
    so every send is taken: the bench's streams stay live and accept gifts)."""
    engine = create_engine(stack.postgres_dsn)
    deadline = time.monotonic() + timeout
    gifts = credits = 0
    with console.status(f"waiting for Postgres to hold {expected:,} gifts and credits"):
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                gifts = int(conn.execute(text("SELECT count(*) FROM stream_gifts")).scalar_one())
                credits = int(
                    conn.execute(text("SELECT count(*) FROM earnings_history WHERE kind = 'gift'")).scalar_one()
                )
            if gifts >= expected and credits >= expected:
                break
            time.sleep(0.1)
    done_at = time.monotonic()
    engine.dispose()
    return gifts, credits, done_at - started


def event_rate(broker: str, name: str, kind: str) -> tuple[int, float, float]:
    """How many `kind` events, per second of append time, and gifts (their `count`) per second."""
    records, _, _ = read_topic(broker, name)
    events = sorted(((ts, orjson.loads(value)) for ts, value in records), key=lambda pair: pair[0])
    events = [(ts, e) for ts, e in events if e["type"] == kind]
    if len(events) < 2:
        return len(events), float("nan"), float("nan")
    seconds = max((events[-1][0] - events[0][0]) / 1000, 1e-3)
    gifts = sum(e["payload"].get("count", 1) for _, e in events)
    return len(events), len(events) / seconds, gifts / seconds


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["http", "kafka"], default="http")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--senders", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20, help="http mode: duration")
    parser.add_argument("--concurrency", type=int, default=256, help="http mode: requests in flight")
    parser.add_argument("--sends", type=int, default=20000, help="kafka mode: SendGift commands")
    parser.add_argument("--bundle", type=int, default=20,
                        help="kafka mode: commands per bundle record per partition (1: each alone)")
    args = parser.parse_args()
    settings = Settings()
    stack = start_stack()
    try:
        with console.status("opening streams and filling wallets"):
            streams, users = asyncio.run(_setup(stack.api_url, settings, args.streams, args.senders))
        with console.status("the floor: GET /healthz on the same stack"):
            floor_done, floor_seconds = asyncio.run(http_floor.drive(stack.api_url, 10, args.concurrency))
        healthz_per_s = floor_done / floor_seconds
        cpu_before = cpu_seconds(stack)
        with console.status(f"sending gifts ({args.mode})"):
            if args.mode == "http":
                load = asyncio.run(_http_gifts(stack.api_url, settings, streams, users, args.seconds, args.concurrency))
            else:
                load = kafka_gifts(stack, streams, users, args.sends, args.bundle)
        expected = int(load["taken"] + load["pending"]) if args.mode == "http" else args.sends
        gifts, credits, e2e_seconds = wait_projected(stack, load["started"], expected)
        cpu_after = cpu_seconds(stack)
        cpu = cpu_rows(cpu_before, cpu_after, gifts, e2e_seconds)
        cpu_ms_per_send = sum(cpu_after[n] - cpu_before.get(n, 0.0) for n in cpu_after) / max(gifts, 1) * 1000
        taken, taken_rate, gift_rate = event_rate(stack.broker, topics.EVENTS_STREAMS.name, "streams.GiftReceived")
        credited, credit_rate, _ = event_rate(stack.broker, topics.EVENTS_EARNINGS.name, "earnings.EarningsCredited")
        _, raw_rate, raw_mb = read_topic(stack.broker, topics.EVENTS_STREAMS.name)
        with console.status("spaktok ledger check"):
            engine = create_engine(stack.postgres_dsn)
            report, differences = ledger.check(stack.broker, engine, wait_s=60)
            engine.dispose()
        problems = len(report.problems) + len(differences)
    finally:
        stack.stop()

    table = Table(title=f"gifts end to end ({args.mode}, {args.streams} streams, {args.senders} senders)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    if args.mode == "http":
        table.add_row("HTTP gift sends answered/s", f"{load['sends'] / load['seconds']:,.0f}")
        table.add_row("  of which taken (200) / pending (202) / other",
                      f"{load['taken']:,.0f} / {load['pending']:,.0f} / {load['other']:,.0f}")
        table.add_row("HTTP gifts taken/s (a send carries 1-3)", f"{load['gifts'] / load['seconds']:,.0f}")
        table.add_row("HTTP latency p50 / p99 (ms)", f"{load['p50']:,.0f} / {load['p99']:,.0f}")
    else:
        table.add_row("SendGift commands produced/s", f"{load['sends'] / load['seconds']:,.0f}  (bundles of {args.bundle})")
    table.add_row("worker: gift sends taken/s (streams)", f"{taken_rate:,.0f}  ({taken:,} in the log)")
    table.add_row("worker: gifts taken/s (a send carries 1-3)", f"{gift_rate:,.0f}")
    table.add_row("worker: credits/s (earnings)", f"{credit_rate:,.0f}  ({credited:,} in the log)")
    table.add_row("end to end: sends projected/s (first send → last credit in Postgres)",
                  f"{gifts / e2e_seconds:,.0f}  ({gifts:,} rows, {credits:,} credits, {e2e_seconds:,.1f} s)")
    table.add_row("raw broker consume, stream events (records/s)", f"{raw_rate:,.0f}  ({raw_mb:,.1f} MB/s)")
    for name, value in cpu:
        table.add_row(name, value)
    table.add_row("ledger check", "every coin accounted for" if problems == 0 and report.settled
                  else f"{problems} problem(s), settled={report.settled}")
    table.add_row("floor: GET /healthz answered/s (same stack, same run)", f"{healthz_per_s:,.0f}")
    sends_per_s = gifts / e2e_seconds
    table.add_row("end to end sends/s ÷ floor", f"{sends_per_s / healthz_per_s:.3f}")
    console.print(table)
    print(orjson.dumps({  # noqa: T201 - the headline figures, last line
        "bench": "gifts", "mode": args.mode, "sends_per_s": round(sends_per_s, 1),
        "healthz_per_s": round(healthz_per_s, 1), "ratio": round(sends_per_s / healthz_per_s, 4),
        "cpu_ms_per_send": round(cpu_ms_per_send, 2),
        "p50_ms": round(load["p50"]) if args.mode == "http" else None,
        "p99_ms": round(load["p99"]) if args.mode == "http" else None,
        "ledger_ok": problems == 0 and report.settled,
    }).decode())
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
