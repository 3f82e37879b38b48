"""Rebuild the ClickHouse tables from the event log into a fresh database, then exchange them in.

The events go into `replay_<ts>.events` (same DDL, same rows as the projector writes: `event_row`),
whose own materialized views fill `replay_<ts>.stream_minute_metrics` and `viewer_watch_time`.
The switch is `EXCHANGE TABLES` per table; the views in the live database are bound to their tables
by name, so after the exchange they feed the rebuilt tables. The exchange of three tables is not one
atomic step, so the ClickHouse projector must not insert meanwhile: the rebuild runs where that
projector runs and pauses it (docs/replay.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from spaktok.projections.clickhouse import COLUMNS, ClickHouse, event_row, schema_statements
from spaktok.projections.replay import LogReader, TopicPartitionKey

DATA_TABLES = ("events", "stream_minute_metrics", "viewer_watch_time")
VIEWS = (
    "stream_minute_metrics_mv",
    "stream_minute_metrics_shard_beats_mv",
    "viewer_watch_time_visits_mv",
    "viewer_watch_time_beats_mv",
    "viewer_watch_time_shard_beats_mv",
)
_NAMES = re.compile(r"\b(" + "|".join(DATA_TABLES + VIEWS) + r")\b")

# what must be equal after a rebuild, per table: the merged content (parts and merges differ) and
# never `ingested_at`, the wall-clock time of the insert
FINGERPRINTS = {
    "events": (
        "SELECT count() AS n, sum(cityHash64({cols})) AS h FROM {db}.events FINAL".format(
            cols=", ".join(f"`{c}`" for c in COLUMNS), db="{db}"
        )
    ),
    "stream_minute_metrics": (
        "SELECT count() AS n, sum(cityHash64(*)) AS h FROM (SELECT stream_id, minute, sum(joins), "
        "sum(leaves), sum(heartbeats), sum(likes), sum(comments), sum(gift_sends), sum(gifts), sum(revenue), "
        "sum(broadcaster_revenue), sum(platform_revenue), max(peak_viewers) "
        "FROM {db}.stream_minute_metrics GROUP BY stream_id, minute)"
    ),
    "viewer_watch_time": (
        "SELECT count() AS n, sum(cityHash64(*)) AS h FROM (SELECT stream_id, user_id, max(completed_s), "
        "max(last_joined), max(last_left), max(last_seen) FROM {db}.viewer_watch_time "
        "GROUP BY stream_id, user_id)"
    ),
}


class ClickHouseReplay(LogReader):
    """`create()`, `build()`, then `switch()` while the ClickHouse projector is paused."""

    def __init__(self, ch: ClickHouse, broker: str, stamp: str | None = None, block: int = 50_000) -> None:
        super().__init__(broker, stamp)
        self.ch = ch
        self.block = block
        self.database = f"replay_{self.stamp}"
        self.live = str(ch.query("SELECT currentDatabase() AS d")[0]["d"])
        self.positions: dict[tuple[str, str], int] = {}

    def create(self) -> None:
        self.ch.command(f"CREATE DATABASE {self.database}")
        for statement in schema_statements():
            if statement.upper().startswith("DROP"):
                continue  # removals of older objects: a fresh database has none
            self.ch.command(_NAMES.sub(lambda m: f"{self.database}.{m.group(1)}", statement))

    def build(self, progress: Callable[[int], None] | None = None, idle_s: float = 1.0) -> None:
        ends = self.end_offsets()
        rows: list[list[Any]] = []
        skipped: dict[TopicPartitionKey, int] = {}
        for messages in self.messages(ends, idle_s):
            started = time.perf_counter()
            for record in self._decode(messages, skipped):
                env = record.envelope
                if env.sequence > 0:  # the projector's rule: re-emitted events are dropped by sequence
                    key = (env.aggregate_type, env.aggregate_id)
                    if env.sequence <= self.positions.get(key, 0):
                        continue
                    self.positions[key] = env.sequence
                rows.append(event_row(record))
            if len(rows) >= self.block:
                self._insert(rows)
                rows = []
            self.stats.seconds_apply += time.perf_counter() - started
            if progress is not None:
                progress(len(messages))
        started = time.perf_counter()
        self._insert(rows)
        self.stats.seconds_apply += time.perf_counter() - started

    def _insert(self, rows: list[list[Any]]) -> None:
        if rows:
            self.ch.insert(f"{self.database}.events", rows, COLUMNS)
            self.stats.applied += len(rows)
            self.stats.rows += len(rows)

    def switch(self) -> None:
        started = time.perf_counter()
        for table in DATA_TABLES:
            self.ch.command(f"EXCHANGE TABLES {self.live}.{table} AND {self.database}.{table}")
        self.stats.seconds_switch = time.perf_counter() - started

    def compare(self) -> dict[str, tuple[int, int]]:
        """Per table: rows (merged) in the live database and whether the other one differs (0 or 1)."""
        result = {}
        for table, query in FINGERPRINTS.items():
            live = self.ch.query(query.format(db=self.live))[0]
            other = self.ch.query(query.format(db=self.database))[0]
            result[table] = (int(live["n"]), int((live["n"], live["h"]) != (other["n"], other["h"])))
        return result

    def drop(self) -> None:
        self.ch.command(f"DROP DATABASE IF EXISTS {self.database}")

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
