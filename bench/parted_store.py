"""What a store costs a big per-user map that did not change (commands/parted_map.py `PartedMap`).

    python bench/parted_store.py

A fold of a hot stream's likes changes no viewer, yet the worker thaws the stream and stores it, and
a stream's viewers and watch times are PartedMaps: a thaw copies their lists of parts and a store
names every part, so a batch that touches neither still pays per part. Parts grow with the audience
up to MAX_PARTS (256, at ~500,000 users), then stop. This is the per-map share of the fold record's
cost that `bench/hot_stream.py` measured growing from 347 µs (10,000 viewers) to 585 µs (1 M).
It prints, per size: the parts and the CPU of `thawed()` + `parts()` with no change (mean of 200),
and as the last line one JSON object.
"""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console
from rich.table import Table

from spaktok.commands.parted_map import PartedMap
from spaktok.commands.parts import MAX_PARTS

SIZES = (10_000, 100_000, 1_000_000, 2_000_000)
REPEATS = 200


def store_cost(users: int) -> tuple[int, float]:
    stored = PartedMap({f"user_{n:08d}": [n, n] for n in range(users)})
    stored.parts("viewers")  # the first store folds the map whole
    started = time.process_time()
    for _ in range(REPEATS):
        stored.thawed().parts("viewers")
    return stored._count, (time.process_time() - started) / REPEATS * 1e6  # noqa: SLF001 - a bench looks inside


def main() -> None:
    table = Table(
        title=f"thaw + store of an unchanged PartedMap (mean of {REPEATS}); MAX_PARTS = {MAX_PARTS}"
    )
    for column in ("users", "parts", "µs per thaw + store"):
        table.add_column(column, justify="right")
    figures = {}
    for users in SIZES:
        parts, us = store_cost(users)
        figures[users] = round(us, 1)
        table.add_row(f"{users:,}", f"{parts:,}", f"{us:,.0f}")
    Console().print(table)
    sys.stdout.write(json.dumps({"bench": "parted_store", "us_per_unchanged_store": figures}) + "\n")


if __name__ == "__main__":
    main()
