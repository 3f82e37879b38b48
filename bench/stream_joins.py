"""How fast one stream takes joins: the cap on a hot stream's audience (issue #20).

    python bench/stream_joins.py                      # 40,000 joins per mode, each into its own stream
    python bench/stream_joins.py --modes batched --joins 100000 --profile   # and a py-spy profile

Joins stay with the stream aggregate (the access policy decides each; the viewer count is exact), so
every join of one stream is decided on one partition by one worker. On one fresh embedded stack,
this bench puts `--joins` joins of one stream straight into Kafka per mode, each mode into a stream
of its own:
- `lone`: one `JoinStream` per Kafka message (the worst case: a quiet API sends each alone);
- `bundled`: `JoinStream` commands in bundle records of 500 (the API's command bundler under load);
- `batched`: `JoinViewers` of `--batch` viewers (the API's join batcher under load).
It measures the rate at which the worker decided them (append times of the `ViewerJoined` events),
the time until the stream's document counted them all, and the CPU the worker and the projector
spent per 1,000 joins. The floor is the broker's raw consume rate of the command topic, read in the
same run. With `--profile`, py-spy samples the worker for 20 s under a backlog of the last mode and
the heaviest frames are printed. The last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import http_floor
import orjson
import psutil
from like_shards import Edge, start, wait_for_document
from load import create_streams, read_topic
from rich.console import Console
from rich.table import Table

from spaktok.api.auth import mint_token
from spaktok.commands.streams import ArrivingViewer, JoinStream, JoinViewers
from spaktok.infra import bundles, topics
from spaktok.infra.devstack import DevStack
from spaktok.settings import Settings

console = Console()
PY_SPY = Path(sys.executable).parent / "py-spy"
BATCHES_METRIC = "spaktok_edge_batches_sent_total "


def profile(pid: int, seconds: int = 20) -> list[tuple[float, str]]:
    """The worker's heaviest frames (inclusive share of the samples), from py-spy's raw output."""
    out = Path(tempfile.mkdtemp(prefix="spaktok-joins-prof-")) / "raw.txt"
    command = [str(PY_SPY), "record", "-p", str(pid), "-d", str(seconds), "-f", "raw", "-o", str(out)]
    subprocess.run([*command, "--nonblocking"], capture_output=True, check=True)
    wanted = (
        "decide_commands",
        "handle_batch",
        "_decide",
        "_publish",
        "Topic.send",
        "_drain_messages",
        "Fetcher._fetcher",
        "ProjectionRunner.run",
        "WebhookOutbox.apply",
    )
    inclusive: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not frames:
            continue
        total += int(count)
        functions = {frame.split(" (")[0] for frame in frames.split(";")}  # e.g. AggregateRunner._decide
        for name in wanted:
            if any(f == name or f.endswith(f".{name}") for f in functions):
                inclusive[name] += int(count)
    shutil.rmtree(out.parent, ignore_errors=True)
    return [(inclusive[name] / max(1, total), name) for name in wanted]


MODES = {
    "lone": "one JoinStream per Kafka message",
    "bundled": "JoinStream commands in bundle records (the API's command bundler under load)",
    "batched": "JoinViewers edge batches (the API's join batcher under load)",
    "http": "POST /viewers through the API (its join batcher gathers them)",
    "http-keyed": "POST /viewers with an Idempotency-Key (each join travels alone as JoinStream)",
}


class Joiner:
    """Puts joins of one stream into Kafka in one of the `MODES`."""

    def __init__(self, edge: Edge, mode: str, batch: int) -> None:
        self.edge, self.mode, self.batch = edge, mode, batch
        self.pending: list = []

    def join(self, user: str) -> None:
        if self.mode == "lone":
            self.edge.join(user)
            return
        self.pending.append(user)
        if len(self.pending) >= (self.batch if self.mode == "batched" else bundles.MAX_MEMBERS):
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        users, self.pending = self.pending, []
        ident = {"issued_at": datetime.now(UTC), "stream_id": self.edge.sid}
        if self.mode == "batched":
            viewers = [ArrivingViewer(user_id=u, username=u) for u in users]
            command = JoinViewers(**ident, command_id=str(uuid.uuid4()), actor_id="edge", viewers=viewers)
            value = command.to_bytes()
        else:
            value = bundles.encode(
                [
                    JoinStream(**ident, command_id=str(uuid.uuid4()), actor_id=u, username=u).to_bytes()
                    for u in users
                ]
            )
        self.edge.produce(topics.COMMANDS_STREAMS.name, self.edge.sid, value)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each role's process so far."""
    seconds = {}
    for role, pid in pids.items():
        times = psutil.Process(pid).cpu_times()
        seconds[role] = times.user + times.system
    return seconds


async def http_joins(api_url: str, sid: str, joins: int, concurrency: int, keyed: bool) -> tuple[int, int]:
    """`joins` users join over HTTP, `concurrency` requests in flight; (answered 200, join batches sent)."""
    settings = Settings()
    admin = {"Authorization": f"Bearer {mint_token(settings, 'bench-admin', roles=['admin'])}"}
    ok = 0
    queue = iter(range(joins))

    async def batches(session: aiohttp.ClientSession) -> int:
        async with session.get(f"{api_url}/metrics", headers=admin) as answer:
            text = await answer.text()
        return int(float(next(x for x in text.splitlines() if x.startswith(BATCHES_METRIC)).split()[1]))

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for n in queue:
            headers = {"Authorization": f"Bearer {mint_token(settings, f'h{n}')}"}
            if keyed:
                headers["Idempotency-Key"] = f"join-{n}"
            async with session.post(f"{api_url}/v1/streams/{sid}/viewers", headers=headers) as answer:
                await answer.read()
                ok += answer.status == 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        before = await batches(session)
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        return ok, await batches(session) - before


def run_mode(
    stack: DevStack, mode: str, joins: int, batch: int, pids: dict[str, int], concurrency: int
) -> dict:
    [sid] = create_streams(stack.api_url, Settings(), 1, owner=f"joins-{uuid.uuid4().hex[:6]}")
    cpu_before = cpu_seconds(pids)
    produced_at = time.monotonic()
    answered, batches = joins, 0
    if mode.startswith("http"):
        with console.status(f"{mode}: {joins:,} joins over HTTP"):
            answered, batches = asyncio.run(
                http_joins(stack.api_url, sid, joins, concurrency, mode == "http-keyed")
            )
    else:
        joiner = Joiner(Edge(stack, sid, 0), mode, batch)
        with console.status(f"{mode}: {joins:,} joins into Kafka"):
            for n in range(joins):
                joiner.join(f"u{n}")
            joiner.flush()
            joiner.edge.producer.flush(120)
    sent_s = time.monotonic() - produced_at
    with console.status(f"{mode}: waiting for the document to count every viewer"):
        wait_for_document(stack, sid, "viewerCount", joins, timeout=3600)
    counted_s = time.monotonic() - produced_at
    cpu = {role: spent - cpu_before[role] for role, spent in cpu_seconds(pids).items()}
    raw, _, _ = read_topic(stack.broker, topics.EVENTS_STREAMS.name)
    joined = [
        ts
        for ts, value in raw
        if b'"streams.ViewerJoined"' in value and orjson.loads(value)["aggregate_id"] == sid
    ]
    span_s = max(1e-3, (max(joined) - min(joined)) / 1000)
    return {
        "mode": mode,
        "decided": len(joined),
        "answered": answered,
        "answered_per_s": joins / sent_s,
        "batches": batches,
        "joins_per_s": len(joined) / span_s,
        "counted_s": counted_s,
        "cpu_ms_per_1000": {role: 1e6 * spent / joins for role, spent in cpu.items()},
    }


def run(joins: int, batch: int, modes: list[str], with_profile: bool, concurrency: int) -> dict:
    stack = start(0, 1)
    try:
        processes = json.loads((stack.data_dir / "processes.json").read_text())
        pids = {p["role"]: p["pid"] for p in processes if p["role"] in ("worker", "projector", "api")}
        healthz = 0.0
        if any(mode.startswith("http") for mode in modes):
            with console.status("the floor: GET /healthz on the same stack"):
                done, seconds = asyncio.run(http_floor.drive(stack.api_url, 5, concurrency))
            healthz = done / seconds
        results = [run_mode(stack, mode, joins, batch, pids, concurrency) for mode in modes]
        frames: list[tuple[float, str]] = []
        if with_profile and PY_SPY.exists():
            [sid] = create_streams(stack.api_url, Settings(), 1, owner=f"joins-{uuid.uuid4().hex[:6]}")
            joiner = Joiner(Edge(stack, sid, 0), "batched", batch)
            with console.status(f"batched: {joins:,} more joins, then profiling the worker for 20 s"):
                for n in range(joins):
                    joiner.join(f"p{n}")
                joiner.flush()
                joiner.edge.producer.flush(120)
                frames = profile(pids["worker"])
        _, floor, _ = read_topic(stack.broker, topics.COMMANDS_STREAMS.name)
        return {
            "joins": joins,
            "batch": batch,
            "results": results,
            "floor": floor,
            "healthz": healthz,
            "frames": frames,
        }
    finally:
        with console.status("stopping the stack"):
            stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=40_000, help="joins per mode, each into its own stream")
    parser.add_argument("--batch", type=int, default=100, help="viewers per JoinViewers (batched mode)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"some of {', '.join(MODES)}")
    parser.add_argument("--concurrency", type=int, default=128, help="HTTP requests in flight (http modes)")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker for 20 s (last Kafka mode)")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if unknown := set(modes) - MODES.keys():
        raise SystemExit(f"unknown modes {sorted(unknown)}: choose from {', '.join(MODES)}")
    r = run(args.joins, args.batch, modes, args.profile, args.concurrency)
    table = Table(
        title=f"{args.joins:,} joins into one stream per mode, one worker (batches of {args.batch})"
    )
    table.add_column("mode")
    columns = ("joins decided", "joins/s decided", "answered/s", "join batches", "document counted all after")
    for column in (*columns, "CPU / 1,000 joins: worker", "projector", "API"):
        table.add_column(column, justify="right")
    for m in r["results"]:
        cpu = m["cpu_ms_per_1000"]
        http = m["mode"].startswith("http")
        table.add_row(
            m["mode"],
            f"{m['decided']:,}",
            f"{m['joins_per_s']:,.0f}",
            f"{m['answered_per_s']:,.0f}" if http else "-",
            f"{m['batches']:,}" if http else "-",
            f"{m['counted_s']:.1f} s",
            f"{cpu['worker']:.0f} ms",
            f"{cpu['projector']:.0f} ms",
            f"{cpu['api']:.0f} ms",
        )
    console.print(table)
    for mode in modes:
        console.print(f"{mode}: {MODES[mode]}")
    console.print(f"floor: the broker's consume rate of the command topic, {r['floor']:,.0f} records/s")
    if r["healthz"]:
        console.print(f"floor: GET /healthz answered/s on the same stack, {r['healthz']:,.0f}")
    for share, frame in r["frames"]:
        console.print(f"worker samples in {frame}: {share:.0%}")
    sys.stdout.write(
        json.dumps(
            {
                "joins": r["joins"],
                "batch": r["batch"],
                "joins_per_s": {m["mode"]: round(m["joins_per_s"]) for m in r["results"]},
                "counted_s": {m["mode"]: round(m["counted_s"], 1) for m in r["results"]},
                "worker_cpu_ms_per_1000": {
                    m["mode"]: round(m["cpu_ms_per_1000"]["worker"]) for m in r["results"]
                },
                "http_answered_per_s": {
                    m["mode"]: round(m["answered_per_s"])
                    for m in r["results"]
                    if m["mode"].startswith("http")
                },
                "healthz_per_s": round(r["healthz"]),
                "floor_records_per_s": round(r["floor"]),
                "profile": {frame: round(share, 3) for share, frame in r["frames"]},
            }
        )
        + "\n"
    )
    short = [m for m in r["results"] if m["decided"] != r["joins"] or m["answered"] != r["joins"]]
    if short:
        raise SystemExit(
            ", ".join(
                f"{m['mode']}: {m['decided']:,} decided, {m['answered']:,} answered 200 of {r['joins']:,}"
                for m in short
            )
        )


if __name__ == "__main__":
    main()
