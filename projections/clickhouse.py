"""ClickHouse: every event in `events`, per-minute metrics through a materialized view.

Effectively-once without transactions: each row carries its Kafka (topic, partition, offset), so the
checkpoint is `max(offset)` per partition and is written by the very INSERT that writes the data.
Events re-emitted after a worker crash are dropped by aggregate sequence before inserting, so the
materialized views never count an event twice.
"""

from __future__ import annotations

import re
import threading
from importlib import resources
from typing import Any

import clickhouse_connect
import orjson

from spaktok.infra.kafka import EventProducer
from spaktok.projections import clickhouse_sql
from spaktok.projections.clickhouse_sql import SqlLimits, SqlResult
from spaktok.projections.runner import ProjectionRunner, Record
from spaktok.settings import Settings

COLUMNS = [
    "event_id",
    "type",
    "schema_version",
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "occurred_at",
    "causation_id",
    "correlation_id",
    "actor_id",
    "stream_id",
    "user_id",
    "payload",
    "topic",
    "partition",
    "offset",
    "envelope",
]


class ClickHouse:
    """A ClickHouse client (server or in-process chDB) shared safely between threads."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._client = clickhouse_connect.get_client(dsn=dsn)
        self._lock = threading.Lock()
        self._readonly: Any = None  # analysts' client, opened at their first query
        self._readonly_lock = threading.Lock()

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with self._lock:
            return self._client.command(sql, parameters=parameters)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            result = self._client.query(sql, parameters=parameters)
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def insert(self, table: str, rows: list[list[Any]], columns: list[str]) -> None:
        with self._lock:
            self._client.insert(table, rows, column_names=columns)

    def query_readonly(self, sql: str, limits: SqlLimits) -> SqlResult:
        """An analyst's query under `readonly=1` and `limits`; raises `clickhouse_sql.SqlRefused`.
        It runs on a client of its own: chDB keeps `USE`/`SET` per client handle (a second handle on
        the process's one engine is allowed), so nothing an analyst sends can change the session the
        projector inserts through, and a long query does not hold the projector's lock."""
        with self._readonly_lock:
            if self._readonly is None:
                try:
                    self._readonly = clickhouse_connect.get_client(dsn=self.dsn)
                except Exception as exc:  # noqa: BLE001 - a refusal the caller can show
                    raise clickhouse_sql.refusal(exc, limits) from exc
            return clickhouse_sql.run(self._readonly, sql, limits)

    def close(self) -> None:
        with self._readonly_lock:
            if self._readonly is not None:
                self._readonly.close()
        with self._lock:
            self._client.close()


MV_DDL = re.compile(
    r"CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS(.*)", re.DOTALL | re.IGNORECASE
)


def schema_statements() -> list[str]:
    """The statements of `schemas/clickhouse.sql`, comments dropped, in file order."""
    ddl = resources.files("spaktok.schemas").joinpath("clickhouse.sql").read_text()
    statements = []
    for statement in ddl.split(";"):
        body = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))
        if body.strip():
            statements.append(body.strip())
    return statements


def apply_schema(ch: ClickHouse) -> None:
    """Create what is missing; a materialized view created now is first filled from the events
    already stored (those inserted before this moment: later ones reach it through the view)."""
    for statement in schema_statements():
        mv = MV_DDL.match(statement)
        if mv is None:
            ch.command(statement)
            continue
        view, select = mv.group(1), mv.group(3)
        if ch.query(
            "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = {v:String}",
            {"v": view},
        )[0]["n"]:
            continue
        cutoff = ch.query("SELECT now64(3) AS t")[0]["t"]
        try:
            # without IF NOT EXISTS: of several processes starting at once, only the one whose CREATE
            # succeeded backfills, so the stored events are counted once
            ch.command(statement.replace(" IF NOT EXISTS", "", 1))
        except Exception as exc:
            if "already exists" in str(exc).lower():
                continue
            raise
        backfill(ch, mv.group(2), select, cutoff)


def backfill(ch: ClickHouse, target: str, select: str, before: Any) -> None:
    """Run a view's query over the events stored before `before` (deduplicated) into its table."""
    moment = before.strftime("%Y-%m-%d %H:%M:%S.%f")[:23]  # our own server's clock reading, not input
    stored = f"ingested_at < toDateTime64('{moment}', 3, 'UTC')"
    source = f"FROM (SELECT * FROM events FINAL WHERE {stored}) AS events"
    query, count = re.subn(r"\bFROM events\b", source, select, count=1)
    if count != 1:
        raise ValueError(f"cannot backfill {target}: its view does not read FROM events")
    ch.command(f"INSERT INTO {target} {query}")


KNOWN_POSITIONS_KEPT = 1_000_000  # aggregates whose stored sequence the projector keeps in memory


class ClickHouseEventsProjector:
    name = "clickhouse-events"

    def __init__(self, ch: ClickHouse) -> None:
        self.ch = ch
        # the highest sequence stored per aggregate, as far as this projector has looked or written:
        # while it owns a partition it is the only writer of that partition's rows (a replay exchanges
        # the table and starts a new projector), so after the first look an aggregate costs no query
        # per batch
        self._known: dict[tuple[str, str], int] = {}

    def checkpoints(self) -> dict[tuple[str, int], int]:
        """Asked on every assignment: with several projector processes (a ClickHouse server,
        docs/operations.md) a partition may come back after another process wrote its rows, so what
        this one remembered of its aggregates is forgotten and looked up again."""
        self._known.clear()
        rows = self.ch.query(
            "SELECT topic, partition, max(offset) AS o FROM events GROUP BY topic, partition"
        )
        return {(r["topic"], int(r["partition"])): int(r["o"]) for r in rows}

    def _positions(self, records: list[Record]) -> dict[tuple[str, str], int]:
        """The stored sequence of each aggregate in `records` that the cache does not know yet."""
        known = self._known
        ids = sorted(
            {
                env.aggregate_id
                for env in (r.envelope for r in records)
                if env.sequence > 0 and (env.aggregate_type, env.aggregate_id) not in known
            }
        )
        if not ids:
            return {}
        rows = self.ch.query(
            "SELECT aggregate_type, aggregate_id, max(sequence) AS s FROM events "
            "WHERE aggregate_id IN {ids:Array(String)} GROUP BY aggregate_type, aggregate_id",
            {"ids": ids},
        )
        return {(r["aggregate_type"], r["aggregate_id"]): int(r["s"]) for r in rows}

    def apply(self, records: list[Record], skipped: dict[tuple[str, int], int]) -> int:
        known = self._known
        moved = self._positions(records)
        rows: list[list[Any]] = []
        for record in records:
            env = record.envelope
            key = (env.aggregate_type, env.aggregate_id)
            if env.sequence > 0:
                if env.sequence <= moved.get(key, known.get(key, 0)):
                    continue
                moved[key] = env.sequence
            rows.append(event_row(record))
        if rows:
            self.ch.insert("events", rows, COLUMNS)
        # only once stored: a failed insert leaves the cache as it was
        if len(known) + len(moved) > KNOWN_POSITIONS_KEPT:
            known.clear()
        known.update(moved)
        # skipped (dead-lettered) offsets leave no row: they are re-read and re-parked after a restart,
        # which the dead-letter consumer tolerates (the original bytes and offset are in the headers)
        return len(rows)


def event_row(record: Record) -> list[Any]:
    """The `events` row of one record, in COLUMNS order (the Kafka position is part of the row)."""
    env = record.envelope
    payload = env.payload
    stream_id = env.aggregate_id if env.aggregate_type == "stream" else str(payload.get("stream_id", ""))
    return [
        env.event_id,
        env.type,
        env.schema_version,
        env.aggregate_type,
        env.aggregate_id,
        env.sequence,
        env.occurred_at,
        env.causation_id,
        env.correlation_id,
        env.actor_id,
        stream_id,
        str(payload.get("user_id") or env.actor_id),
        orjson.dumps(payload).decode(),
        record.topic,
        record.partition,
        record.offset,
        record.raw.decode() if record.raw else env.to_bytes().decode(),
    ]


def events_runner(settings: Settings, ch: ClickHouse, producer: EventProducer) -> ProjectionRunner:
    """The ClickHouse projector as it runs: inserts gathered for `clickhouse_linger_ms` while the log
    is busy (ClickHouse wants few large inserts; each chDB insert has a fixed cost of milliseconds)."""
    return ProjectionRunner(
        settings,
        ClickHouseEventsProjector(ch),
        producer,
        batch_size=20_000,
        linger_s=settings.clickhouse_linger_ms / 1000,
    )
