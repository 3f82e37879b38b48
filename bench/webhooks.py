"""Webhook deliveries on the embedded stack: how many per second, and how long from event to receipt.

    python bench/webhooks.py                       # 20 streams, a burst of 5,000 comments, then 200/s for 10 s
    python bench/webhooks.py --burst 20000 --rate 500

It starts its own dev stack and a local receiver (aiohttp, in a process of its own) that verifies
every signature and notes each delivery's receipt time. Twenty broadcasters each register a webhook
for `streams.CommentPosted` on their stream, then:

- burst: SendComment commands straight into Kafka as fast as the producer goes; deliveries/s is
  timed from the first to the last receipt (the deliverer's top speed behind a backlog),
- paced: `--rate` comments/s for `--seconds`; latency p50/p99 from the event's `time` (its
  occurred_at, set by the worker) to the receiver's clock (the same machine's),
- the floor, in the same run: the same receiver driven by a plain aiohttp loop from this process with
  the deliverer's concurrency and signed bodies of the same size — the most a sender could get from
  this receiver here; the ratio carries across machines, the absolute figures do not.

The last line is one JSON object of the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import httpx
import orjson
from confluent_kafka import Producer
from load import console, create_streams, start_stack
from rich.table import Table
from spaktok.api.auth import mint_token
from spaktok.commands.streams import SendComment
from spaktok.infra import topics
from spaktok.infra.devstack import free_port
from spaktok.infra.kafka import producer_config
from spaktok.processors import webhook_signing as signing
from spaktok.settings import Settings
from sqlalchemy import create_engine, text

HOOK_TYPE = "streams.CommentPosted"


# -- the receiver (its own process) ----------------------------------------------------------------


def receive(port: int, secrets: dict[str, str]) -> None:
    """Answer 200 to every delivery that verifies (400 otherwise); GET /stats: what arrived."""
    from aiohttp import web

    got: list[tuple[str, str, float]] = []  # event id, event time, receipt time
    refused = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal refused
        body = await request.read()
        try:
            signing.verify(secrets[request.match_info["name"]], dict(request.headers), body, time.time())
        except (signing.InvalidSignature, KeyError):
            refused += 1
            return web.Response(status=400)
        if request.match_info["name"] == "floor":
            return web.Response(status=200)
        event = orjson.loads(body)
        got.append((event["id"], event["time"], time.time()))
        return web.Response(status=200)

    async def stats(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"got": got, "refused": refused}), content_type="application/json")

    app = web.Application()
    app.add_routes([web.post("/hook/{name}", hook), web.get("/stats", stats)])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def receiver_stats(base: str) -> dict:
    return orjson.loads(httpx.get(f"{base}/stats", timeout=30).content)


# -- load -------------------------------------------------------------------------------------------


def produce_comments(broker: str, streams: list[str], n: int, rate: float | None) -> float:
    """`n` SendComment commands (each from a user of its own: no per-user interval), paced or not."""
    producer = Producer({**producer_config(Settings(broker=broker)), "linger.ms": 5})
    started = time.monotonic()
    for i in range(n):
        sid = streams[i % len(streams)]
        if rate is not None:
            ahead = started + i / rate - time.monotonic()
            if ahead > 0:
                producer.poll(ahead)
        user = f"fan-{uuid.uuid4().hex[:10]}"
        command = SendComment(command_id=str(uuid.uuid4()), issued_at=datetime.now(UTC), actor_id=user,
                              stream_id=sid, username=user, text=f"hello {i}")
        while True:
            try:
                producer.produce(topics.COMMANDS_STREAMS.name, key=sid, value=command.to_bytes())
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return time.monotonic() - started


def wait_for(base: str, count: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while True:
        got = receiver_stats(base)["got"]
        if len({g[0] for g in got}) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


async def floor(base: str, secret: str, seconds: float, concurrency: int, size: int) -> float:
    """Requests/s the receiver answers to a plain signed-POST loop (aiohttp, the deliverer's client)
    with the deliverer's concurrency: no outbox, no log, no Kafka."""
    done = 0
    body_pad = "x" * max(size - 200, 0)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:
        stop_at = time.monotonic() + seconds

        async def one() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                body = orjson.dumps({"id": str(uuid.uuid4()), "time": datetime.now(UTC).isoformat(), "pad": body_pad})
                headers = signing.headers(secret, "floor", int(time.time()), body)
                async with client.post(f"{base}/hook/floor", data=body, headers=headers) as r:
                    await r.read()
                    done += r.status == 200

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return done / (time.monotonic() - started)


def latencies_ms(got: list) -> list[float]:
    return [(received - datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()) * 1000 for _, at, received in got]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 2 else (values[0] if values else 0.0)


# -- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=200.0, help="paced phase: comments/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="paced phase: how long")
    parser.add_argument("--floor-seconds", type=float, default=5.0)
    args = parser.parse_args()
    settings = Settings()
    stack = start_stack()
    receiver = None
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with console.status("opening streams and registering webhooks"):
            streams = create_streams(stack.api_url, settings, args.streams, owner="hook-owner")
            secrets = {"floor": signing.new_secret()}
            for i in range(args.streams):
                api = httpx.Client(base_url=stack.api_url, timeout=30,
                                   headers={"Authorization": f"Bearer {mint_token(settings, f'hook-owner-{i}')}"})
                r = api.post("/v1/webhooks", json={"url": f"{base}/hook/{i}", "eventTypes": [HOOK_TYPE]})
                r.raise_for_status()
                secrets[str(i)] = r.json()["secret"]
            receiver = multiprocessing.get_context("spawn").Process(target=receive, args=(port, secrets), daemon=True)
            receiver.start()
            _wait_port(base)
        with console.status("the floor: a plain aiohttp loop to the same receiver"):
            floor_per_s = asyncio.run(floor(base, secrets["floor"], args.floor_seconds, settings.webhook_concurrency, 700))
        with console.status(f"burst: {args.burst:,} comments into Kafka, waiting for every delivery"):
            produce_comments(stack.broker, streams, args.burst, None)
            burst = wait_for(base, args.burst, timeout=600)
        first, last = min(g[2] for g in burst), max(g[2] for g in burst)
        burst_ids = {g[0] for g in burst}
        burst_per_s = len(burst_ids) / max(last - first, 1e-9)
        paced_n = int(args.rate * args.seconds)
        with console.status(f"paced: {args.rate:,.0f} comments/s for {args.seconds:.0f} s"):
            produce_comments(stack.broker, streams, paced_n, args.rate)
            everything = wait_for(base, args.burst + paced_n, timeout=300)
        paced = [g for g in everything if g[0] not in burst_ids]
        lat = latencies_ms(paced)
        stats = receiver_stats(base)
        engine = create_engine(stack.postgres_dsn)
        with engine.connect() as conn:
            attempts = conn.execute(text("SELECT count(*), count(*) FILTER (WHERE outcome <> 'delivered') "
                                         "FROM webhooks.attempts")).one()
            # where the paced latency goes: event -> outbox row, outbox row -> recorded as delivered
            stages = conn.execute(text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM created_at - occurred_at)), "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - created_at)) "
                "FROM webhooks.deliveries WHERE event_id = ANY(:ids)"), {"ids": [g[0] for g in paced]}).one()
            # the burst's stages: outbox rows written per second, deliveries recorded per second
            spans = conn.execute(text(
                "SELECT count(*) / greatest(extract(epoch FROM max(created_at) - min(created_at)), 0.001), "
                "count(*) / greatest(extract(epoch FROM max(delivered_at) - min(delivered_at)), 0.001) "
                "FROM webhooks.deliveries WHERE event_id = ANY(:ids)"), {"ids": sorted(burst_ids)}).one()
        engine.dispose()
    finally:
        if receiver is not None:
            receiver.kill()
        stack.stop()

    received = len(stats["got"])
    unique = len({g[0] for g in stats["got"]})
    p50, p99 = pct(lat, 50), pct(lat, 99)
    table = Table(title=f"webhooks: {args.streams} subscriptions, one local receiver")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("burst: deliveries/s (first → last receipt)", f"{burst_per_s:,.0f}  ({len(burst_ids):,} events)")
    table.add_row("burst stages: outbox rows written/s · deliveries recorded/s",
                  f"{float(spans[0]):,.0f} · {float(spans[1]):,.0f}")
    table.add_row(f"paced {args.rate:,.0f}/s: delivered", f"{len({g[0] for g in paced}):,} of {paced_n:,}")
    table.add_row("paced: latency event → receipt p50 / p99 (ms)", f"{p50:,.0f} / {p99:,.0f}")
    table.add_row("paced p50: event → outbox row / outbox row → delivered (ms)",
                  f"{(stages[0] or 0) * 1000:,.0f} / {(stages[1] or 0) * 1000:,.0f}")
    table.add_row("duplicates received (at least once)", f"{received - unique:,}")
    table.add_row("signatures refused by the receiver", f"{stats['refused']:,}")
    table.add_row("attempts logged / not delivered", f"{attempts[0]:,} / {attempts[1]:,}")
    table.add_row("floor: same receiver, plain aiohttp loop (requests/s)", f"{floor_per_s:,.0f}")
    table.add_row("burst deliveries/s ÷ floor", f"{burst_per_s / floor_per_s:.3f}")
    console.print(table)
    print(orjson.dumps({  # noqa: T201 - the headline figures, last line
        "bench": "webhooks", "deliveries_per_s": round(burst_per_s, 1), "floor_per_s": round(floor_per_s, 1),
        "ratio": round(burst_per_s / floor_per_s, 4), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
        "rate": args.rate, "delivered": unique, "duplicates": received - unique, "refused": stats["refused"],
    }).decode())


def _wait_port(base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{base}/stats", timeout=2)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


if __name__ == "__main__":
    random.seed(1)
    main()
