"""Realtime feed benchmark: many WebSocket viewers of one stream while its chat runs.

    python bench/live.py                      # 5,000 viewers, 50 comments/s for 30 s
    python bench/live.py --viewers 1000 --rate 20 --seconds 10
    python bench/live.py --client-procs 1     # every viewer in this process (the client may then
                                              # be what is measured: see "CPU: clients" in the table)
    python bench/live.py --client aiohttp     # the viewers as aiohttp WebSockets (what it used before)

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

The viewers are real WebSocket clients that offer permessage-deflate, as browsers do, but lean ones
(`FeedSocket`): each connection's frames are read in its protocol's `data_received`, with no task,
queue or message object per frame. With aiohttp's client they took more CPU per message than the
API (59-79 µs against 43 µs), on the same 2 cores, so much of the latency measured was theirs.

The last line is JSON: `p50_ms`, `p99_ms`, `delivery_ratio` and the rest of the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import multiprocessing as mp
import os
import signal
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

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


def received(viewer: Viewer, data: bytes | str) -> None:
    """One message of the feed arrived: note its comments. As little work per message as the check
    needs: the clients share the cores with the server, and every item of every message passes here."""
    mono, wall = time.monotonic(), time.time()
    items = orjson.loads(data)
    sequences = [item["sequence"] for item in items if item["type"] == "comment"]
    if sequences:
        viewer.sequences += sequences
        if viewer.sampled:
            viewer.arrivals += [(seq, mono, wall) for seq in sequences]


class FeedSocket(asyncio.Protocol):
    """A viewer's WebSocket, read in `data_received`: the server's frames (unmasked) are cut out of
    the bytes as they come, with no task, queue or message object per frame. It answers pings and the
    closing handshake (its own frames masked, as a client's must be). It offers permessage-deflate, as
    browsers and mobile clients do, and refuses a server that accepts it (frames are not compressed
    per socket: docs/realtime.md)."""

    def __init__(self, host: str, target: str, viewer: Viewer) -> None:
        self.host, self.target, self.viewer = host, target, viewer
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int | None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.parts: list[bytes] = []
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET {self.target} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n".encode()
        )

    def _send(self, opcode: int, payload: bytes) -> None:
        """A control frame (payload under 126 bytes), masked."""
        assert self.transport is not None
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def _handshake(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").lower()
        del self.buffer[: end + 4]
        if not head.startswith("http/1.1 101") or "\nsec-websocket-extensions:" in head:
            self.opened.set_exception(ConnectionError(f"handshake refused: {head.splitlines()[0]!r}"))
            assert self.transport is not None
            self.transport.close()
            return False
        self.opened.set_result(None)
        return True

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.opened.done() and not self._handshake():
            return
        at, size = 0, len(buffer)
        while size - at >= 2:
            first, length, start = buffer[at], buffer[at + 1] & 0x7F, at + 2
            if length == 126:
                if size - at < 4:
                    break
                length, start = struct.unpack_from("!H", buffer, at + 2)[0], at + 4
            elif length == 127:
                if size - at < 10:
                    break
                length, start = struct.unpack_from("!Q", buffer, at + 2)[0], at + 10
            if size - start < length:
                break
            payload, at = bytes(buffer[start : start + length]), start + length
            opcode = first & 0x0F
            if opcode in (0x0, 0x1, 0x2):  # continuation, text, binary
                self.parts.append(payload)
                if first & 0x80:  # the message's last frame
                    received(self.viewer, self.parts[0] if len(self.parts) == 1 else b"".join(self.parts))
                    self.parts = []
            elif opcode == 0x9:  # ping
                self._send(0xA, payload)
            elif opcode == 0x8:  # close: answer it, and let the server end the TCP connection
                self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
                self._send(0x8, payload[:2])
        del buffer[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost in the handshake: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)


async def _failed(viewer: Viewer, opened: asyncio.Semaphore, attempt: int, exc: BaseException) -> bool:
    """A connection attempt failed: True when the viewer gives up (the last attempt, or it had
    already received frames: a reconnect would break its order check), else after a pause to retry."""
    viewer.open = False
    if attempt == 2 or viewer.sequences:
        viewer.close_code = -1
        console.log(f"connection failed: {exc!r}")
        opened.release()
        return True
    await asyncio.sleep(0.5)
    return False


async def watch_lean(url: str, viewer: Viewer, opened: asyncio.Semaphore) -> None:
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    for attempt in range(3):  # a refused handshake under load is retried, as a real client would
        socket: FeedSocket | None = None
        try:
            _, socket = await loop.create_connection(
                lambda: FeedSocket(f"{host}:{port}", target, viewer), host, port
            )
            await asyncio.wait_for(socket.opened, 60)
        except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
            if socket is not None and socket.transport is not None:
                socket.transport.close()
            if await _failed(viewer, opened, attempt, exc):
                return
            continue
        viewer.open = True
        opened.release()
        try:
            viewer.close_code = await socket.closed
        finally:
            viewer.open = False
            if socket.transport is not None:
                socket.transport.close()
        return


async def watch(session: aiohttp.ClientSession, url: str, viewer: Viewer, opened: asyncio.Semaphore) -> None:
    for attempt in range(3):  # a refused handshake under load is retried, as a real client would
        try:
            # compress: offers permessage-deflate, as browsers do (the API declines it)
            async with session.ws_connect(url, heartbeat=None, max_msg_size=0, compress=15) as ws:
                viewer.open = True
                opened.release()
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    received(viewer, message.data)
                viewer.close_code = ws.close_code
                viewer.open = False
                return
        except (TimeoutError, aiohttp.ClientError) as exc:
            if await _failed(viewer, opened, attempt, exc):
                return


# -- one client process: a share of the viewers -------------------------------------------------------


async def _clients(conn: Connection, urls: list[tuple[int, str]], wave: int, client: str) -> None:
    """Open the connections in waves (reporting each wave), hold them until told the chat ended and
    how many comments to wait for, then send back what every viewer got."""
    loop = asyncio.get_running_loop()
    viewers = {i: Viewer(sampled=i % SAMPLE_EVERY == 0) for i, _ in urls}
    async with contextlib.AsyncExitStack() as resources:
        if client == "aiohttp":
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=None)
            session = await resources.enter_async_context(
                aiohttp.ClientSession(connector=connector, timeout=timeout)
            )

            def open_one(url: str, viewer: Viewer, opened: asyncio.Semaphore) -> Any:
                return watch(session, url, viewer, opened)
        else:
            open_one = watch_lean
        opened = asyncio.Semaphore(0)
        watchers = []
        for start in range(0, len(urls), wave):
            chunk = urls[start : start + wave]
            watchers += [asyncio.create_task(open_one(url, viewers[i], opened)) for i, url in chunk]
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


def client_process(conn: Connection, urls: list[tuple[int, str]], wave: int, client: str) -> None:
    # uvloop, as the API runs: with asyncio's own loop, a third of the clients' CPU went to the loop
    uvloop.install()
    asyncio.run(_clients(conn, urls, wave, client))


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
        share = urls[k :: args.client_procs]
        proc = ctx.Process(target=client_process, args=(child, share, args.wave, args.client))
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
        f"{args.client_procs} client process(es) ({args.client})"
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
        "client": args.client,
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
    parser.add_argument(
        "--client",
        choices=("lean", "aiohttp"),
        default="lean",
        help="lean: frames read in the socket's protocol (the clients share the cores with the server, "
        "so the less CPU they take per message, the more the figures are the server's); aiohttp: as before",
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
