"""Realtime feed benchmark: many WebSocket viewers of one stream while its chat runs.

    python bench/live.py                      # 5,000 viewers, 50 comments/s for 30 s
    python bench/live.py --viewers 1000 --rate 20 --seconds 10
    python bench/live.py --client-procs 1     # every viewer in this process (the client may then
                                              # be what is measured: see "CPU: clients" in the table)

It starts its own embedded stack, creates a live stream, opens the WebSocket connections (in
waves, as real audiences arrive) from `--client-procs` processes, then posts comments over HTTP at a
steady rate from a pool of users (each within the 2 s per-user chat limit) and measures, on the
client side:

- connections held: opened, and still open when the run ends;
- delivery: every viewer must receive every comment, in order (feed items carry the stream's event
  sequence, so a gap, a duplicate or a reordering is detected per connection);
- push latency: from just before the HTTP POST of a comment to its arrival at a viewer (the whole
  path: API, Kafka, worker, Kafka, the API's feed, the WebSocket), sampled on every 25th viewer,
  and where it went: POST -> the command's time (`at`, the API's clock when it built the command)
  -> the worker produced the event (the record's timestamp, read after the run) -> arrival;
- the frames the API wrote and its CPU per frame written;
- the CPU of every process (the load generator and its clients share the same 2 cores).

The last line is JSON: `p50_ms`, `p99_ms`, `delivery_ratio` and the rest of the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import psutil
import uvloop
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from load import BENCH_LIMITS, cpu_seconds
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from spaktok.api.auth import mint_token
from spaktok.infra import topics
from spaktok.infra.devstack import DevStack, free_port
from spaktok.settings import Settings

console = Console()
MARKER = "bench "
SAMPLE_EVERY = 25


@dataclass
class Viewer:
    sampled: bool
    sequences: list[int] = field(default_factory=list)  # every comment's stream sequence, as received
    arrivals: list[tuple[int, float, float]] = field(default_factory=list)  # sampled: (sequence, mono, wall)
    # at the end: accepted comments received, comments received not known as accepted, reorderings
    received: int = 0
    extra: set[int] = field(default_factory=set)
    out_of_order: int = 0
    open: bool = False
    close_code: int | None = None


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _epoch(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


async def watch(session: aiohttp.ClientSession, url: str, viewer: Viewer, opened: asyncio.Semaphore) -> None:
    for attempt in range(3):  # a refused handshake under load is retried, as a real client would
        try:
            async with session.ws_connect(url, heartbeat=None, max_msg_size=0) as ws:
                viewer.open = True
                opened.release()
                # as little work per frame as the check needs: the clients share the cores with
                # the server, and every item of every frame passes through here
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    mono, wall = time.monotonic(), time.time()
                    items = orjson.loads(message.data)
                    sequences = [item["sequence"] for item in items if item["type"] == "comment"]
                    if sequences:
                        viewer.sequences += sequences
                        if viewer.sampled:
                            viewer.arrivals += [(seq, mono, wall) for seq in sequences]
                viewer.close_code = ws.close_code
                viewer.open = False
                return
        except (TimeoutError, aiohttp.ClientError) as exc:
            viewer.open = False
            if attempt == 2 or viewer.sequences:
                viewer.close_code = -1
                console.log(f"connection failed: {exc!r}")
                opened.release()
                return
            await asyncio.sleep(0.5)


# -- one client process: a share of the viewers -------------------------------------------------------


async def _clients(conn: Connection, urls: list[tuple[int, str]], wave: int) -> None:
    """Open the connections in waves (reporting each wave), hold them until told the chat ended and
    how many comments to wait for, then send back what every viewer got."""
    loop = asyncio.get_running_loop()
    viewers = {i: Viewer(sampled=i % SAMPLE_EVERY == 0) for i, _ in urls}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        opened = asyncio.Semaphore(0)
        watchers = []
        for start in range(0, len(urls), wave):
            chunk = urls[start : start + wave]
            watchers += [asyncio.create_task(watch(session, url, viewers[i], opened)) for i, url in chunk]
            for _ in chunk:
                await opened.acquire()
            conn.send(("opened", len(chunk)))
        accepted, deadline = await loop.run_in_executor(None, conn.recv)  # stream sequences
        while time.monotonic() < deadline and any(
            v.open and len(v.sequences) < len(accepted) for v in viewers.values()
        ):
            await asyncio.sleep(0.1)
        held = sum(v.open for v in viewers.values())
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    # small answers: per viewer, how many of the accepted comments it got, what else, in what order
    for v in viewers.values():
        seen = set(v.sequences)
        v.received, v.extra = len(seen & accepted), seen - accepted
        v.out_of_order = sum(1 for a, b in zip(v.sequences, v.sequences[1:], strict=False) if b <= a)
        v.sequences = []
    conn.send(("done", held, list(viewers.values())))


def client_process(conn: Connection, urls: list[tuple[int, str]], wave: int) -> None:
    # uvloop, as the API runs: with asyncio's own loop, a third of the clients' CPU went to the loop
    uvloop.install()
    asyncio.run(_clients(conn, urls, wave))


# -- the chat ------------------------------------------------------------------------------------------


async def chat(
    api: str,
    settings: Settings,
    stream_id: str,
    rate: float,
    seconds: float,
    sent_at: dict[int, tuple[float, float]],
) -> tuple[set[int], int, int, list[float], float]:
    """Comments at `rate`/s for `seconds`; returns (accepted numbers, refused, failed, POST latencies,
    seconds spent posting).
    `sent_at`: each comment's (monotonic, wall) time just before its POST. A 202 (not decided within
    the API's wait) is asked again at its status URL after the chat. A POST that failed on the
    connection may still have been taken: if a viewer got it, it counts."""
    users = [mint_token(settings, f"chatter-{n}") for n in range(max(10, int(rate * 4)))]
    accepted: set[int] = set()
    pending: dict[int, tuple[str, str]] = {}  # n -> (status URL, token)
    refused = failed = 0
    answered: list[float] = []
    # each chatter is a client of its own: no shared pool whose queue would count as API latency
    async with aiohttp.ClientSession(api, connector=aiohttp.TCPConnector(limit=0)) as session:

        async def post(n: int, token: str) -> None:
            nonlocal refused, failed
            sent_at[n] = (time.monotonic(), time.time())
            try:
                async with session.post(
                    f"/v1/streams/{stream_id}/comments",
                    json={"text": f"{MARKER}{n}"},
                    headers={"Authorization": f"Bearer {token}"},
                ) as r:
                    body = await r.read()
                    answered.append(time.monotonic() - sent_at[n][0])
                    if r.status == 201:
                        accepted.add(n)
                    elif r.status == 202:
                        pending[n] = (orjson.loads(body)["statusUrl"], token)
                    else:
                        refused += 1
            except aiohttp.ClientError as exc:
                failed += 1
                console.log(f"comment {n} failed: {exc!r}")

        async def settle(n: int, url: str, token: str) -> None:
            nonlocal refused
            for _ in range(100):
                async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                    status = orjson.loads(await r.read()).get("status")
                if status != "pending":
                    break
                await asyncio.sleep(0.2)
            if status == "accepted":
                accepted.add(n)
            else:
                refused += 1

        started = time.monotonic()
        tasks = []
        for n, token in zip(range(int(rate * seconds)), itertools.cycle(users), strict=False):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(n, token)))
        await asyncio.gather(*tasks)
        posting = time.monotonic() - started
        await asyncio.gather(*(settle(n, url, token) for n, (url, token) in pending.items()))
    return accepted, refused, failed, answered, posting


def produced_at(broker: str) -> dict[int, tuple[int, float, float]]:
    """Each bench comment's CommentPosted: its stream sequence, when the worker produced it (the
    record's CreateTime) and its `at` (the API's clock when it built the command), wall clocks."""
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": f"bench-{time.time_ns()}", "enable.auto.commit": False}
    )
    name = topics.EVENTS_STREAMS.name
    parts = consumer.list_topics(name, timeout=10).topics[name].partitions
    assignment = [TopicPartition(name, p, OFFSET_BEGINNING) for p in parts]
    total = sum(
        high - low for low, high in (consumer.get_watermark_offsets(tp, timeout=10) for tp in assignment)
    )
    consumer.assign(assignment)
    found: dict[int, tuple[int, float, float]] = {}
    read, deadline = 0, time.monotonic() + 60
    while read < total and time.monotonic() < deadline:
        for m in consumer.consume(10_000, timeout=1.0):
            read += 1
            if m.error() is not None or b'"streams.CommentPosted"' not in (m.value() or b""):
                continue
            env = orjson.loads(m.value())
            text = env["payload"]["text"]
            if text.startswith(MARKER):
                n = int(text[len(MARKER) :])
                found[n] = (env["sequence"], m.timestamp()[1] / 1000, _epoch(env["occurred_at"]))
    consumer.close()
    return found


def _frames_sent(metrics: str) -> int:
    for line in metrics.splitlines():
        if line.startswith("spaktok_live_frames_sent_total "):
            return int(float(line.split()[-1]))
    return 0


async def run(args: argparse.Namespace, stack: DevStack) -> dict[str, Any]:
    settings = Settings()
    owner = mint_token(settings, "live-bench-owner")
    r = httpx.post(
        f"{stack.api_url}/v1/streams",
        json={"title": "live bench", "category": "chat"},
        headers={"Authorization": f"Bearer {owner}"},
        timeout=30,
    )
    r.raise_for_status()
    stream_id = r.json()["streamId"]
    while (
        httpx.get(
            f"{stack.api_url}/v1/streams/{stream_id}", headers={"Authorization": f"Bearer {owner}"}
        ).status_code
        != 200
    ):
        await asyncio.sleep(0.05)

    ws_base = stack.api_url.replace("http://", "ws://")
    urls = [
        (i, f"{ws_base}/v1/streams/{stream_id}/live?access_token={mint_token(settings, f'viewer-{i}')}")
        for i in range(args.viewers)
    ]
    ctx = mp.get_context("spawn")
    clients = []
    for k in range(args.client_procs):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=client_process, args=(child, urls[k :: args.client_procs], args.wave))
        proc.start()
        clients.append((proc, parent))
    loop = asyncio.get_running_loop()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("opening WebSocket connections", total=args.viewers)
        waiting = sum(len(urls[k :: args.client_procs]) for k in range(args.client_procs))
        while waiting:
            for _, pipe in clients:
                while await loop.run_in_executor(None, pipe.poll, 0.05):
                    _, n = pipe.recv()
                    waiting -= n
                    progress.advance(task, n)

    admin = {"Authorization": f"Bearer {mint_token(settings, 'live-bench-admin', roles=['admin'])}"}
    frames_before = _frames_sent(httpx.get(f"{stack.api_url}/metrics", headers=admin).text)
    client_ps = [psutil.Process(p.pid) for p, _ in clients]
    cpu_before = cpu_seconds(stack)
    client_before = sum(sum(p.cpu_times()[:2]) for p in client_ps)
    sent_at: dict[int, tuple[float, float]] = {}
    with console.status(f"chat at {args.rate:g} comments/s for {args.seconds:g} s"):
        accepted, refused, failed, answered, chat_seconds = await chat(
            stack.api_url, settings, stream_id, args.rate, args.seconds, sent_at
        )
        with console.status("reading the comments' events"):
            produced = produced_at(stack.broker)
        by_sequence = {seq: n for n, (seq, _, _) in produced.items()}
        wanted = {produced[n][0] for n in accepted if n in produced}
        # an accepted comment missing from the log stays expected (len(accepted) below): a miss
        deadline = time.monotonic() + 15
        for _, pipe in clients:
            pipe.send((wanted, deadline))
        results = [await loop.run_in_executor(None, pipe.recv) for _, pipe in clients]
        seconds = time.monotonic() - min(mono for mono, _ in sent_at.values())
        cpu_after = cpu_seconds(stack)
        client_cpu = sum(sum(p.cpu_times()[:2]) for p in client_ps) - client_before
    for proc, _ in clients:
        proc.join(10)
    metrics = httpx.get(f"{stack.api_url}/metrics", headers=admin).text  # admins only
    frames = _frames_sent(metrics) - frames_before

    held_after = sum(held for _, held, _ in results)
    viewers: list[Viewer] = [v for _, _, vs in results for v in vs]
    extra = set().union(*(v.extra for v in viewers))  # a failed POST that a viewer saw was taken
    expected = (len(accepted) + len(extra)) * args.viewers
    received = sum(v.received + len(v.extra) for v in viewers)
    complete = sum(1 for v in viewers if v.received == len(accepted) and v.extra == extra)
    samples = [
        (by_sequence[seq], mono, wall)
        for v in viewers
        for seq, mono, wall in v.arrivals
        if seq in by_sequence
    ]
    latencies = [mono - sent_at[n][0] for n, mono, _ in samples]
    # where the time went, per sample: the API until it built the command (`at`), the command topic
    # and the worker until it produced the event, then the feed: broker, hub, fan-out, the client
    stages = {
        "POST -> command built (API)": [produced[n][2] - sent_at[n][1] for n, _, _ in samples],
        "-> event produced (Kafka, worker)": [produced[n][1] - produced[n][2] for n, _, _ in samples],
        "-> arrival (feed: fetch, gap, fan-out, client)": [wall - produced[n][1] for n, _, wall in samples],
    }
    out_of_order = sum(v.out_of_order for v in viewers)
    slow = next(
        (line.split()[-1] for line in metrics.splitlines() if line.startswith("spaktok_live_slow")), "?"
    )
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    table = Table(
        title=f"spaktok realtime feed: {args.viewers:,} WebSocket viewers of one stream, "
        f"{args.rate:g} comments/s for {args.seconds:g} s, 1 API process, "
        f"{args.client_procs} client process(es)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("notes")
    table.add_row(
        "connections held",
        f"{held_after:,} / {args.viewers:,}",
        f"at the end of the run; slow-client disconnects: {slow}",
    )
    table.add_row(
        "comments posted",
        f"{len(accepted):,}" + (f" + {len(extra)}" if extra else ""),
        f"{len(accepted) / chat_seconds:,.1f}/s; {refused} refused, {failed} failed on the connection",
    )
    table.add_row(
        "delivery ratio",
        f"{received / expected:.4%}" if expected else "n/a",
        f"{received:,} of {expected:,} comment deliveries; {complete:,} viewers got every comment",
    )
    table.add_row("out-of-order or duplicate deliveries", f"{out_of_order:,}", "")
    table.add_row(
        "push latency p50",
        f"{p50:,.0f} ms",
        f"POST -> arrival at the viewer; {len(latencies):,} samples from every {SAMPLE_EVERY}th viewer",
    )
    table.add_row("push latency p99", f"{p99:,.0f} ms", f"feed tick {settings.live_tick_ms} ms")
    for stage, values in stages.items():
        table.add_row(
            f"  {stage} p50 / p99",
            f"{percentile(values, 0.5) * 1000:,.0f} / {percentile(values, 0.99) * 1000:,.0f} ms",
            "wall clocks of one machine",
        )
    table.add_row(
        "  POST answered p50 / p99",
        f"{percentile(answered, 0.5) * 1000:,.0f} / {percentile(answered, 0.99) * 1000:,.0f} ms",
        "the comment's HTTP round trip (waits for the worker's decision)",
    )
    cpu = {name: (used - cpu_before.get(name, 0.0)) / seconds for name, used in cpu_after.items()}
    cpu["clients"] = client_cpu / seconds
    api_us = (cpu_after["api"] - cpu_before["api"]) / max(frames, 1) * 1e6
    table.add_row(
        "frames written by the API",
        f"{frames:,}",
        f"{frames / seconds:,.0f}/s; API CPU {api_us:,.1f} µs per frame written (everything it did / frames)",
    )
    for name, cores in cpu.items():
        table.add_row(
            f"CPU: {name}",
            f"{cores * 100:.0f} %",
            "from the first POST to the last arrival; 100 % = one core",
        )
    console.print(table)
    return {
        "bench": "live",
        "viewers": args.viewers,
        "rate": args.rate,
        "seconds": args.seconds,
        "client_procs": args.client_procs,
        "tick_ms": settings.live_tick_ms,
        "held": held_after,
        "comments": len(accepted),
        "refused": refused,
        "failed": failed,
        "delivery_ratio": round(received / expected, 6) if expected else None,
        "out_of_order": out_of_order,
        "p50_ms": round(p50),
        "p99_ms": round(p99),
        "post_p50_ms": round(percentile(answered, 0.5) * 1000),
        "stages_p50_ms": {k: round(percentile(v, 0.5) * 1000) for k, v in stages.items()},
        "stages_p99_ms": {k: round(percentile(v, 0.99) * 1000) for k, v in stages.items()},
        "slow_disconnects": slow,
        "frames": frames,
        "api_us_per_frame": round(api_us, 1),
        "cpu_pct": {name: round(cores * 100) for name, cores in cpu.items()},
    }


def main() -> None:
    # SIGTERM (e.g. `timeout`, `kill`) unwinds like Ctrl-C, so the stack below is stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=50, help="comments per second")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--wave", type=int, default=250, help="connections opened at a time (per client process)"
    )
    parser.add_argument(
        "--client-procs", type=int, default=2, help="processes the viewers' sockets are spread over"
    )
    args = parser.parse_args()
    stack = DevStack(
        data_dir=Path(tempfile.mkdtemp(prefix="spaktok-live-bench-")), api_port=free_port(), partitions=4
    )
    stack.extra_env.update(BENCH_LIMITS)
    with console.status("starting the embedded stack"):
        stack.start()
    try:
        figures = asyncio.run(run(args, stack))
    finally:
        with console.status("stopping the stack"):
            stack.stop()
    print(orjson.dumps(figures).decode())  # noqa: T201 - the bench's machine-readable last line


if __name__ == "__main__":
    main()
