"""Realtime feed benchmark: many WebSocket viewers of one stream while its chat runs.

    python bench/live.py                      # 5,000 viewers, 50 comments/s for 30 s
    python bench/live.py --viewers 1000 --rate 20 --seconds 10

It starts its own embedded stack, creates a live stream, opens the WebSocket connections (in
waves, as real audiences arrive), then posts comments over HTTP at a steady rate from a pool of
users (each within the 2 s per-user chat limit) and measures, on the client side:

- connections held: opened, and still open when the run ends;
- delivery: every viewer must receive every comment, in order (feed items carry the stream's event
  sequence, so a gap, a duplicate or a reordering is detected per connection);
- push latency: from just before the HTTP POST of a comment to its arrival at a viewer (the whole
  path: API, Kafka, worker, Kafka, the API's feed, the WebSocket), sampled on every 25th viewer;
- the API process's CPU while the chat runs (the load generator shares the same 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import orjson
import psutil
from load import BENCH_LIMITS
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from spaktok.api.auth import mint_token
from spaktok.infra.devstack import DevStack, free_port
from spaktok.settings import Settings

console = Console()
MARKER = "bench "


@dataclass
class Viewer:
    sampled: bool
    received: int = 0
    last_sequence: int = 0
    out_of_order: int = 0
    latencies: list[float] = field(default_factory=list)
    open: bool = False
    close_code: int | None = None


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def watch(
    session: aiohttp.ClientSession,
    url: str,
    viewer: Viewer,
    sent_at: dict[int, float],
    opened: asyncio.Semaphore,
) -> None:
    try:
        async with session.ws_connect(url, heartbeat=None, max_msg_size=0) as ws:
            viewer.open = True
            opened.release()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.monotonic()
                for item in orjson.loads(message.data):
                    if item["type"] != "comment" or not item["text"].startswith(MARKER):
                        continue
                    if item["sequence"] <= viewer.last_sequence:
                        viewer.out_of_order += 1
                    viewer.last_sequence = item["sequence"]
                    viewer.received += 1
                    if viewer.sampled:
                        viewer.latencies.append(now - sent_at[int(item["text"][len(MARKER) :])])
            viewer.close_code = ws.close_code
    except (TimeoutError, aiohttp.ClientError) as exc:
        viewer.close_code = -1
        console.log(f"connection failed: {exc!r}")
        opened.release()
    finally:
        viewer.open = False


async def chat(
    api: str, settings: Settings, stream_id: str, rate: float, seconds: float, sent_at: dict[int, float]
) -> tuple[int, int]:
    """Comments at `rate`/s for `seconds`; returns (accepted, refused)."""
    users = [mint_token(settings, f"chatter-{n}") for n in range(max(10, int(rate * 4)))]
    accepted = refused = 0
    async with aiohttp.ClientSession(api) as session:

        async def post(n: int, token: str) -> None:
            nonlocal accepted, refused
            sent_at[n] = time.monotonic()
            async with session.post(
                f"/v1/streams/{stream_id}/comments",
                json={"text": f"{MARKER}{n}"},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                await r.read()
                if r.status in (201, 202):
                    accepted += 1
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
    return accepted, refused


async def run(args: argparse.Namespace, stack: DevStack) -> None:
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

    api_process = psutil.Process(stack.processes["api"].pid)
    viewers = [Viewer(sampled=i % 25 == 0) for i in range(args.viewers)]
    sent_at: dict[int, float] = {}
    ws_base = stack.api_url.replace("http://", "ws://")
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        opened = asyncio.Semaphore(0)
        watchers = []
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("opening WebSocket connections", total=args.viewers)
            for wave in range(0, args.viewers, args.wave):
                for i in range(wave, min(wave + args.wave, args.viewers)):
                    token = mint_token(settings, f"viewer-{i}")
                    url = f"{ws_base}/v1/streams/{stream_id}/live?access_token={token}"
                    watchers.append(asyncio.create_task(watch(session, url, viewers[i], sent_at, opened)))
                for _ in range(min(args.wave, args.viewers - wave)):
                    await opened.acquire()
                    progress.advance(task)
        held_before = sum(v.open for v in viewers)

        api_process.cpu_percent()
        with console.status(f"chat at {args.rate:g} comments/s for {args.seconds:g} s"):
            started = time.monotonic()
            accepted, refused = await chat(
                stack.api_url, settings, stream_id, args.rate, args.seconds, sent_at
            )
            chat_seconds = time.monotonic() - started
            api_cpu = api_process.cpu_percent()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(v.open and v.received < accepted for v in viewers):
                await asyncio.sleep(0.1)
        held_after = sum(v.open for v in viewers)
        admin = {"Authorization": f"Bearer {mint_token(settings, 'live-bench-admin', roles=['admin'])}"}
        metrics = httpx.get(f"{stack.api_url}/metrics", headers=admin).text  # admins only
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    expected = accepted * args.viewers
    received = sum(v.received for v in viewers)
    complete = sum(1 for v in viewers if v.received == accepted)
    latencies = [s for v in viewers for s in v.latencies]
    slow = next(
        (line.split()[-1] for line in metrics.splitlines() if line.startswith("spaktok_live_slow")), "?"
    )
    table = Table(
        title=f"spaktok realtime feed: {args.viewers:,} WebSocket viewers of one stream, "
        f"{args.rate:g} comments/s for {args.seconds:g} s, 1 API process"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("notes")
    table.add_row(
        "connections held",
        f"{held_after:,} / {args.viewers:,}",
        f"{held_before:,} open before the chat, {held_after:,} after; slow-client disconnects: {slow}",
    )
    table.add_row("comments posted", f"{accepted:,}", f"{accepted / chat_seconds:,.1f}/s; {refused} refused")
    table.add_row(
        "delivery ratio",
        f"{received / expected:.4%}" if expected else "n/a",
        f"{received:,} of {expected:,} comment deliveries; {complete:,} viewers got every comment",
    )
    table.add_row("out-of-order or duplicate deliveries", f"{sum(v.out_of_order for v in viewers):,}", "")
    table.add_row(
        "push latency p50",
        f"{percentile(latencies, 0.5) * 1000:,.0f} ms",
        f"POST -> arrival at the viewer; {len(latencies):,} samples from every 25th viewer",
    )
    table.add_row(
        "push latency p99",
        f"{percentile(latencies, 0.99) * 1000:,.0f} ms",
        f"feed tick {settings.live_tick_ms} ms",
    )
    table.add_row("API process CPU during the chat", f"{api_cpu:.0f} %", "100 % = one core")
    console.print(table)


def main() -> None:
    # SIGTERM (e.g. `timeout`, `kill`) unwinds like Ctrl-C, so the stack below is stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=50, help="comments per second")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--wave", type=int, default=250, help="connections opened at a time")
    args = parser.parse_args()
    stack = DevStack(
        data_dir=Path(tempfile.mkdtemp(prefix="spaktok-live-bench-")), api_port=free_port(), partitions=4
    )
    stack.extra_env.update(BENCH_LIMITS)
    with console.status("starting the embedded stack"):
        stack.start()
    try:
        asyncio.run(run(args, stack))
    finally:
        with console.status("stopping the stack"):
            stack.stop()


if __name__ == "__main__":
    main()
