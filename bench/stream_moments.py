"""The big stream's rare moments, in process: the 5-minute analytics snapshot and the end.

    python bench/stream_moments.py                      # 1,000 · 100,000 · 1,000,000 viewers, ~6 min
    python bench/stream_moments.py --sizes 1000,100000  # ~30 s

A worker holds its event loop for as long as one batch takes to decide: while it does, nothing else
on that worker moves (other streams, the shards' folds, Faust's keepalive). The per-viewer batches
(joins, likes, heartbeats) cost the same at any audience (`bench/worker.py`); this bench measures the
two moments that touch every viewer at once, on the worker's own stream runner over an in-memory
table and broker (`bench/worker.py`'s `World`):

- the analytics snapshot (`RecordAnalyticsSnapshot`, every `analytics_snapshot_s`), which ranks
  every viewer's watch time;
- the end (`EndStream` by the broadcaster): every viewer leaves with their watch time, then the
  stream ends. Each batch the end takes is run (the forwards the stream sends itself fed back to it,
  as its command topic's consumer would) until it sends none, and the biggest batch is reported with
  the count of batches and their total CPU.

The floor is a batch of one comment on the same stream, measured in the same run: what any batch
costs, whatever the audience. The last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from worker import World, comment, live_stream

from spaktok.commands.streams import EndStream, RecordAnalyticsSnapshot
from spaktok.infra.collector import tune_collector

console = Console(width=max(Console().width, 150))

SIZES = (1_000, 100_000, 1_000_000)
REPEATS = 3  # snapshots and comment batches measured per audience (the median is reported)


@dataclass
class Ending:
    batches: list[float] = field(default_factory=list)  # CPU ms of each batch, in order
    events: Counter[str] = field(default_factory=Counter)
    records: int = 0  # records the end sent, events and forwards


@dataclass
class Moments:
    viewers: int
    comment_ms: float
    snapshot_ms: float
    ending: Ending
    setup_s: float

    def figures(self) -> dict[str, Any]:
        return {
            "viewers": self.viewers,
            "comment_batch_ms": round(self.comment_ms, 3),
            "snapshot_batch_ms": round(self.snapshot_ms, 2),
            "snapshot_vs_comment": round(self.snapshot_ms / self.comment_ms, 1),
            "end_batches": len(self.ending.batches),
            "end_biggest_batch_ms": round(max(self.ending.batches), 1),
            "end_biggest_vs_comment": round(max(self.ending.batches) / self.comment_ms, 1),
            "end_total_cpu_s": round(sum(self.ending.batches) / 1000, 2),
            "viewers_left": self.ending.events["streams.ViewerLeft"],
            "ended": self.ending.events["streams.StreamEnded"] == 1,
        }


async def _median_ms(world: World, make: Any, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        batch = await world.run("stream", world.records([make()]))
        times.append(batch.cpu_s * 1000)
    return statistics.median(times)


async def _end(world: World, stream_id: str, host: str) -> Ending:
    """The end and every batch it takes, each forward to the stream fed back as the next batch."""
    ending = Ending()
    end = EndStream(command_id=world.command_id(), issued_at=world.now(), actor_id=host, stream_id=stream_id)
    records = world.records([end])
    while records:
        batch = await world.run("stream", records)
        ending.batches.append(batch.cpu_s * 1000)
        ending.events.update(batch.events())
        ending.records += len(batch.sent)
        records = world.forwarded(batch.sent, "stream")  # the next part's release, if any is left
    return ending


async def measure(size: int) -> Moments:
    world = World()
    started = time.perf_counter()
    with console.status(f"{size:,} viewers: joining"):
        stream = await live_stream(world, size, name=f"m{size}")
    setup_s = time.perf_counter() - started
    gc.collect()
    users = iter(stream.viewers)
    comment_ms = await _median_ms(world, lambda: comment(world, stream, next(users), step_ms=3000))
    with console.status(f"{size:,} viewers: snapshots"):
        snapshot_ms = await _median_ms(
            world,
            lambda: RecordAnalyticsSnapshot(
                command_id=world.command_id(),
                issued_at=world.now(),
                actor_id="system",
                stream_id=stream.stream_id,
            ),
        )
    with console.status(f"{size:,} viewers: ending"):
        ending = await _end(world, stream.stream_id, stream.host)
    if ending.events["streams.ViewerLeft"] != size or ending.events["streams.StreamEnded"] != 1:
        raise AssertionError(f"the end of {size:,} viewers decided {dict(ending.events)}")
    return Moments(size, comment_ms, snapshot_ms, ending, setup_s)


def report(results: list[Moments]) -> None:
    table = Table(title="A big stream's rare moments: CPU of one batch (ms) and its ratio to a comment's")
    for column in (
        "viewers",
        "comment batch",
        "snapshot batch",
        "÷ comment",
        "end: batches",
        "biggest batch",
        "÷ comment",
        "total CPU",
        "left · ended",
    ):
        table.add_column(column, justify="right")
    for r in results:
        f = r.figures()
        table.add_row(
            f"{r.viewers:,}",
            f"{f['comment_batch_ms']:.2f}",
            f"{f['snapshot_batch_ms']:,.1f}",
            f"{f['snapshot_vs_comment']:,.0f}x",
            f"{f['end_batches']:,}",
            f"{f['end_biggest_batch_ms']:,.1f}",
            f"{f['end_biggest_vs_comment']:,.0f}x",
            f"{f['end_total_cpu_s']:,.2f} s",
            f"{f['viewers_left']:,} · {'yes' if f['ended'] else 'no'}",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="audience sizes (viewers)")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    tune_collector()  # the garbage collector as the worker runs it
    # the audiences are built by batches of thousands of joins: the worker's long-batch warning
    # would name each of them (it is for a live worker)
    logging.getLogger("spaktok.processors.aggregate").setLevel(logging.ERROR)
    results = []
    for size in sizes:
        results.append(asyncio.run(measure(size)))
        gc.collect()
    report(results)
    print(json.dumps({"moments": [r.figures() for r in results]}))  # noqa: T201 - machine-readable last line


if __name__ == "__main__":
    sys.exit(main())
