"""What a projector batch costs besides its records: CPU per record against the batch size.

    python bench/projector_batches.py                         # 10,000 records at 2000, 200, 50, 20, 5, 1
    python bench/projector_batches.py --records 20000 --sizes 2000,5

Each batch is one Postgres transaction with fixed statements around the records' own (the live lock,
the partitions' claim, the aggregates' positions, the checkpoints, the progress row), so the
smaller the batches, the more of that per record. This applies the same records (bench/replay.py's
mix: joins, beats and likes in batches, comments, gifts with their wallet and earnings events, coin
purchases, follows) through the live Postgres projector (`PostgresStreamsProjector.apply`, no Kafka)
in batches of each size, each size into a fresh Postgres, and prints the projector's CPU (this
process) and Postgres's (its server processes) per record, and the fixed cost per batch that the
smallest size implies against the largest. It is why the projectors linger (docs/decisions.md
"Projector batches"): at most one batch per `SPAKTOK_PROJECTOR_LINGER_MS`.

Last line: one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import orjson
from load import cpu_seconds
from replay import Log, generate
from rich.console import Console
from rich.table import Table
from sqlalchemy import event

from spaktok.events.envelope import decode_projectable
from spaktok.infra.devstack import DevStack, free_port
from spaktok.projections import postgres
from spaktok.projections.runner import Record
from spaktok.projections.streams import PostgresStreamsProjector

console = Console()
PARTITIONS = 4
WARM_UP = 500  # records applied first, untimed: the connection, prepared statements, caches


class Captured:
    """Stands in for the producer `Log` writes to: the records, as the log would hold them."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: object = None) -> None:
        self.records.append((topic, value, key))

    def poll(self, timeout: float) -> None:
        return None


def records(total: int) -> list[Record]:
    """About `total` records of the replay bench's mix, with offsets per (topic, partition)."""
    captured = Captured()
    generate(Log(captured), total)  # type: ignore[arg-type]
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for topic, value, key in captured.records:
        partition = zlib.crc32(key) % PARTITIONS
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        out.append(Record(topic, partition, offset, decode_projectable(value), value, key))
    return out


def postgres_cpu(stack: DevStack) -> float:
    """CPU seconds so far of this stack's Postgres server processes (postmaster and backends)."""
    return cpu_seconds(stack)["postgres"]


def measure(size: int, batch: list[Record]) -> dict[str, float]:
    """The records applied in batches of `size` into a fresh Postgres: CPU per record, both sides."""
    stack = DevStack(data_dir=Path(tempfile.mkdtemp(prefix="spaktok-batches-")), api_port=free_port())
    try:
        stack.start_postgres()
        engine = postgres.make_engine(stack.postgres_dsn)
        postgres.apply_schema(engine)
        projector = PostgresStreamsProjector(engine)
        projector.apply(batch[:WARM_UP], {})
        timed = batch[WARM_UP:]
        sent = [0]  # statements the projector sent (BEGIN and COMMIT are not among them)
        event.listen(engine, "before_cursor_execute", lambda *_: sent.__setitem__(0, sent[0] + 1))
        cpu, pg, wall = time.process_time(), postgres_cpu(stack), time.perf_counter()
        rows = sum(projector.apply(timed[i : i + size], {}) for i in range(0, len(timed), size))
        cpu, pg = time.process_time() - cpu, postgres_cpu(stack) - pg
        wall = time.perf_counter() - wall
        batches = -(-len(timed) // size)
        engine.dispose()
    finally:
        stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)
    n = len(timed)
    return {
        "records": n,
        "rows": rows,
        "projector_us_per_record": cpu / n * 1e6,
        "postgres_us_per_record": pg / n * 1e6,
        "wall_us_per_record": wall / n * 1e6,
        "statements_per_batch": sent[0] / batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--sizes", default="2000,200,50,20,5,1", help="batch sizes, largest first")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with console.status(f"generating {args.records:,} records"):
        batch = records(args.records + WARM_UP)
    results = {}
    for size in sizes:
        with console.status(f"batches of {size}"):
            results[size] = measure(size, batch)
    table = Table(title=f"the Postgres projector, {results[sizes[0]]['records']:,} records in batches of N")
    for column in (
        "batch size",
        "projector CPU µs/record",
        "Postgres CPU µs/record",
        "wall µs/record",
        "statements/batch",
        "rows",
    ):
        table.add_column(column, justify="right")
    for size, r in results.items():
        table.add_row(
            f"{size:,}",
            f"{r['projector_us_per_record']:,.0f}",
            f"{r['postgres_us_per_record']:,.0f}",
            f"{r['wall_us_per_record']:,.0f}",
            f"{r['statements_per_batch']:,.1f}",
            f"{r['rows']:,}",
        )
    console.print(table)
    big, small = results[sizes[0]], results[sizes[-1]]
    per_batch = {
        side: (small[f"{side}_us_per_record"] - big[f"{side}_us_per_record"]) * sizes[-1] / 1000
        for side in ("projector", "postgres")
    }
    console.print(
        f"fixed cost of a batch (batches of {sizes[-1]} against {sizes[0]}): projector "
        f"{per_batch['projector']:.2f} ms + Postgres {per_batch['postgres']:.2f} ms of CPU"
    )
    headline = {
        "bench": "projector_batches",
        "by_size": {str(size): {k: round(v, 1) for k, v in r.items()} for size, r in results.items()},
        "fixed_ms_per_batch": {k: round(v, 3) for k, v in per_batch.items()},
    }
    print(orjson.dumps(headline).decode())  # noqa: T201 - the headline figures, last line


if __name__ == "__main__":
    main()
