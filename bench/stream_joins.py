"""How fast one stream takes joins: the cap on a hot stream's audience (issue #20).

    python bench/stream_joins.py                      # 40,000 joins into one stream, 1 worker
    python bench/stream_joins.py --joins 100000 --profile   # and a py-spy profile of the worker

Joins stay with the stream aggregate (the access policy decides each; the viewer count is exact), so
every join of one stream is decided on one partition by one worker. This bench produces `--joins`
`JoinStream` commands for one stream straight into Kafka (as the API sends them, one message each)
on a fresh embedded stack, and measures the rate at which the worker decided them (append times of
the `ViewerJoined` events) and the time until the stream's document counted them all. The floor is
the broker's raw consume rate of the command topic, read in the same run. With `--profile`, py-spy
samples the worker for 20 s under the backlog and the heaviest frames are printed. The last line is
one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
from like_shards import Edge, start, wait_for_document
from load import create_streams, read_topic
from rich.console import Console
from rich.table import Table

from spaktok.infra import topics
from spaktok.settings import Settings

console = Console()
PY_SPY = Path(sys.executable).parent / "py-spy"


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


def run(joins: int, with_profile: bool) -> dict:
    stack = start(0, 1)
    try:
        [sid] = create_streams(stack.api_url, Settings(), 1, owner=f"joins-{uuid.uuid4().hex[:6]}")
        edge = Edge(stack, sid, 0)
        produced_at = time.monotonic()
        with console.status(f"{joins:,} joins into Kafka"):
            for n in range(joins):
                edge.join(f"u{n}")
            edge.producer.flush(120)
        frames: list[tuple[float, str]] = []
        if with_profile and PY_SPY.exists():
            processes = json.loads((stack.data_dir / "processes.json").read_text())
            worker = next(p["pid"] for p in processes if p["role"] == "worker")
            with console.status("profiling the worker for 20 s"):
                frames = profile(worker)
        with console.status("waiting for the document to count every viewer"):
            wait_for_document(stack, sid, "viewerCount", joins, timeout=3600)
        counted_s = time.monotonic() - produced_at
        raw, _, _ = read_topic(stack.broker, topics.EVENTS_STREAMS.name)
        joined = [
            ts
            for ts, value in raw
            if b'"streams.ViewerJoined"' in value and orjson.loads(value)["aggregate_id"] == sid
        ]
        _, floor, _ = read_topic(stack.broker, topics.COMMANDS_STREAMS.name)
        span_s = max(1e-3, (max(joined) - min(joined)) / 1000)
        return {
            "joins": joins,
            "decided": len(joined),
            "joins_per_s": len(joined) / span_s,
            "counted_s": counted_s,
            "floor": floor,
            "frames": frames,
        }
    finally:
        with console.status("stopping the stack"):
            stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=40_000)
    parser.add_argument("--profile", action="store_true", help="py-spy the worker for 20 s")
    args = parser.parse_args()
    r = run(args.joins, args.profile)
    table = Table(title=f"{args.joins:,} joins into one stream, one worker")
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("joins decided (ViewerJoined events)", f"{r['decided']:,}")
    table.add_row("joins/s decided by the worker", f"{r['joins_per_s']:,.0f}")
    table.add_row("seconds until the document counted every viewer", f"{r['counted_s']:.1f} s")
    table.add_row("floor: the broker's consume rate of the command topic", f"{r['floor']:,.0f} records/s")
    for share, frame in r["frames"]:
        table.add_row(f"worker samples in {frame}", f"{share:.0%}")
    console.print(table)
    sys.stdout.write(
        json.dumps(
            {
                "joins": r["joins"],
                "decided": r["decided"],
                "joins_per_s": round(r["joins_per_s"]),
                "counted_s": round(r["counted_s"], 1),
                "floor_records_per_s": round(r["floor"]),
                "profile": {frame: round(share, 3) for share, frame in r["frames"]},
            }
        )
        + "\n"
    )
    if r["decided"] != r["joins"]:
        raise SystemExit(f"{r['decided']:,} of {r['joins']:,} joins decided")


if __name__ == "__main__":
    main()
