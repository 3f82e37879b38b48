"""A hot stream's shard sweep, in process: what the minute's `SweepShardViewers` costs its worker.

    .venv/bin/python bench/shard_sweep.py                  # shards of 12,500 · 125,000 · 250,000 viewers
    .venv/bin/python bench/shard_sweep.py --sizes 125000

The sweep finds the viewers silent past the time-out by one pass over the shard's viewer map (a
1 M-viewer stream with 8 shards: 125,000 viewers a shard, and a worker may hold several). The map
is built as a worker's would be after a stream's traffic: folded parts, plus overlays where a
third of the viewers beat since the last store. Measured in the same run: the sweep's former pass
(through the map's `items()`, kept here for comparison), and as floors a bare pass over `items()`
and over the parts (`part_views`). Nobody is silent,
the usual case: the cost is the pass. Median of 5. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from spaktok.commands.parted_map import PartedMap
from spaktok.commands.stream_shard_decide import StreamShardState, decide
from spaktok.commands.stream_shards import SweepShardViewers

SILENT_MS = 120_000
REPEATS = 5


def shard(viewers: int, now_ms: int) -> StreamShardState:
    folded = PartedMap({f"u{i}": [now_ms - 600_000, now_ms - random.randint(0, 60_000)] for i in range(viewers)})
    folded.parts("viewers")  # stored: later writes go to overlays, as in a worker
    beaten = folded.thawed()
    for i in range(0, viewers, 3):
        beaten[f"u{i}"] = [now_ms - 600_000, now_ms]
    return StreamShardState(stream_id="st_bench", shard=1, status="live", viewers=beaten)


def former_pass(state: StreamShardState, now_ms: int) -> list[object]:
    """The sweep's pass before 2026-12-04, for comparison: through the map's `items()`."""
    return [
        (user_id, (joined_ms, last_seen))
        for user_id, (joined_ms, last_seen) in state.viewers.items()
        if now_ms - last_seen > SILENT_MS
    ]


def median_ms(work: object) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(viewers: int) -> dict[str, float]:
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    state = shard(viewers, now_ms)
    sweep = SweepShardViewers(
        stream_id="st_bench", shard=1, silent_ms=SILENT_MS, issued_at=now, command_id="c", actor_id="system"
    )
    assert decide(sweep, state) == []  # nobody silent
    late = sweep.model_copy(update={"issued_at": datetime.fromtimestamp((now_ms + 10 * SILENT_MS) / 1000, UTC)})
    assert sum(len(e.visits) for e in decide(late, state)) == viewers  # everybody silent: all found
    return {
        "viewers": viewers,
        "sweep_ms": median_ms(lambda: decide(sweep, state)),
        "before_ms": median_ms(lambda: former_pass(state, now_ms)),
        "items_pass_ms": median_ms(lambda: sum(1 for _ in state.viewers.items())),
        "parts_pass_ms": median_ms(lambda: sum(len(p) for p in state.viewers.part_views())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="12500,125000,250000")
    args = parser.parse_args()
    random.seed(20)
    rows = [measure(int(size)) for size in args.sizes.split(",")]
    table = Table(title=f"a shard's sweep, nobody silent (median of {REPEATS})")
    columns = ("viewers", "sweep", "before: its former pass", "floor: items()", "floor: parts", "µs per viewer")
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['viewers']:,}",
            f"{row['sweep_ms']:.1f} ms",
            f"{row['before_ms']:.1f} ms",
            f"{row['items_pass_ms']:.1f} ms",
            f"{row['parts_pass_ms']:.1f} ms",
            f"{row['sweep_ms'] * 1000 / row['viewers']:.2f}",
        )
    Console().print(table)
    print(json.dumps({"bench": "shard_sweep", "rows": rows}))


if __name__ == "__main__":
    main()
