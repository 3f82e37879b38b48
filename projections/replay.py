"""Rebuild the Postgres read models from the event log into a fresh schema, then switch over.

By default the high-volume events are folded into rows in memory and written with COPY
(`replay_fold.py`, each fold the twin of one SQL handler); every other event runs the live
projector's own handler (`streams.HANDLERS`) after the memory is flushed. `fold=False` runs every
event through the handlers. Either way a rebuild reads the log in order from the beginning, so the
per-aggregate positions live in memory (written once, with COPY) and transactions are large.

Cut-over (docs/replay.md): the build runs beside the live projector without blocking it, up to the
end of the log seen at start. Then, in one transaction: take the projector lock exclusively (the
live projector takes it shared in every batch, so it pauses between two batches), read the live
checkpoints, apply what the live projector applied since, write the checkpoints, and rename
`public` to `old_<ts>` and the fresh schema to `public`. The live projector's next batch resolves
its tables, checkpoints and positions in the new `public` and carries on right after them.
"""

from __future__ import annotations

import gc
import io
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from spaktok.events.base import EVENT_TYPES
from spaktok.events.envelope import decode_projectable
from spaktok.infra import topics
from spaktok.projections import postgres
from spaktok.projections.replay_fold import FOLDED_TABLES, FOLDS
from spaktok.projections.row_store import RowStore
from spaktok.projections.runner import Record
from spaktok.projections.streams import HANDLERS, PostgresStreamsProjector

log = logging.getLogger(__name__)

PROJECTOR_LOCK = postgres.PROJECTOR_LOCK
PROJECTION = PostgresStreamsProjector.name
TopicPartitionKey = tuple[str, int]
Progress = Callable[[int], None]


@dataclass
class ReplayStats:
    records: int = 0  # records read from the log
    applied: int = 0  # events that changed read models (after dropping re-emitted duplicates)
    rows: int = 0  # row writes as the live projector counts them (one per statement row)
    failed: int = 0  # records a handler refused (the live projector dead-lettered them too)
    undecodable: int = 0
    sql_events: int = 0  # events not folded in memory: applied by their SQL handler
    rows_copied: int = 0  # rows the fold wrote with COPY
    rows_loaded: int = 0  # rows read back from Postgres after an SQL handler ran
    caught_up_at_switch: int = 0  # records the live projector had applied meanwhile
    seconds_read: float = 0.0
    seconds_apply: float = 0.0
    seconds_switch: float = 0.0
    failures: list[str] = field(default_factory=list)


def schema_engine(dsn: str, schema: str) -> Engine:
    """An engine whose unqualified names resolve in `schema` only."""
    url = make_url(dsn)
    return create_engine(url, connect_args={"options": f"-c search_path={schema}"}, pool_size=2)


class LogReader:
    """Reads every event partition from the beginning: the part both rebuilds (Postgres, ClickHouse) share."""

    def __init__(self, broker: str, stamp: str | None) -> None:
        self.broker = broker
        self.stamp = stamp or datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        self.stats = ReplayStats()
        self.offsets: dict[TopicPartitionKey, int] = {}  # last offset consumed, applied or skipped
        self._consumer: Consumer | None = None

    def messages(self, ends: dict[TopicPartitionKey, int], idle_s: float) -> Iterator[list]:  # type: ignore[type-arg]
        """Batches of records up to `ends`, then until the log has been quiet for `idle_s` (the dev
        broker's high watermark can be one batch stale)."""
        consumer = self._open()
        pending = {key for key, end in ends.items() if end > 0}
        quiet_since: float | None = None
        while True:
            started = time.perf_counter()
            messages = consumer.consume(5000, timeout=0.2)
            self.stats.seconds_read += time.perf_counter() - started
            if not messages:
                if pending:
                    continue
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= idle_s:
                    return
                continue
            quiet_since = None
            yield messages
            for msg in messages:
                key = (msg.topic(), msg.partition())
                if key in pending and msg.error() is None and msg.offset() >= ends[key] - 1:
                    pending.discard(key)

    def end_offsets(self) -> dict[TopicPartitionKey, int]:
        """The high watermark of every event partition now: how much there is to replay."""
        consumer = self._open()
        partitions = consumer.assignment()
        # one broker round trip each: asked side by side (the client releases the GIL while it waits)
        with ThreadPoolExecutor(max_workers=16) as pool:
            highs = list(pool.map(lambda tp: consumer.get_watermark_offsets(tp, timeout=10)[1], partitions))
        return {(tp.topic, tp.partition): high for tp, high in zip(partitions, highs, strict=True)}

    def _open(self) -> Consumer:
        if self._consumer is None:
            consumer = Consumer(
                {
                    "bootstrap.servers": self.broker,
                    "group.id": f"spaktok-replay-{self.stamp}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                    "fetch.wait.max.ms": 50,
                    "queued.max.messages.kbytes": 262144,
                }
            )
            names = [spec.name for spec in topics.EVENT_TOPICS]
            metadata = consumer.list_topics(timeout=10)
            missing = [name for name in names if name not in metadata.topics]
            if missing:
                raise RuntimeError(f"the broker has no topic {missing[0]}: is this the right --broker?")
            assignment = [
                TopicPartition(name, p, OFFSET_BEGINNING)
                for name in names
                for p in sorted(metadata.topics[name].partitions)
            ]
            consumer.assign(assignment)
            self._consumer = consumer
        return self._consumer

    def _decode(self, messages: list, skipped: dict[TopicPartitionKey, int]) -> Iterator[Record]:  # type: ignore[type-arg]
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading {msg.topic()}: {err}")
                continue
            key = (msg.topic(), msg.partition())
            self.stats.records += 1
            self.offsets[key] = msg.offset()
            try:
                envelope = decode_projectable(msg.value())
            except Exception:  # noqa: BLE001 - the live projector parked it; so does the replay
                self.stats.undecodable += 1
                skipped[key] = msg.offset()
                continue
            yield Record(msg.topic(), msg.partition(), msg.offset(), envelope, msg.value())


class PostgresReplay(LogReader):
    """One rebuild: `build()` from the log into `replay_<ts>`, then `switch()` it in as `public`."""

    def __init__(
        self, dsn: str, broker: str, chunk: int = 20_000, stamp: str | None = None, fold: bool = True
    ) -> None:
        super().__init__(broker, stamp)
        self.fold = fold  # False: every event through its SQL handler (the live projector's path)
        self.dsn = dsn
        self.chunk = chunk
        self.schema = f"replay_{self.stamp}"
        self.old_schema = f"old_{self.stamp}"
        self.positions: dict[str, int] = {}  # aggregate key -> last applied sequence
        self.admin = create_engine(dsn, pool_size=1)
        self.engine = schema_engine(dsn, self.schema)

    # -- build -----------------------------------------------------------------------------------
    def create_schema(self) -> None:
        ddl = resources.files("spaktok.schemas").joinpath("postgres.sql").read_text()
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{self.schema}"')
        with self.engine.begin() as conn:
            conn.exec_driver_sql(ddl)

    def build(self, progress: Progress | None = None, idle_s: float = 1.0) -> dict[TopicPartitionKey, int]:
        """Replay every event partition from the start to the end seen now (then until it is quiet)."""
        # millions of live rows in memory make every cyclic collection scan them all (measured: a
        # third of the run); the replay creates no reference cycles worth collecting meanwhile
        gc.disable()
        try:
            return self._build(progress, idle_s)
        finally:
            gc.enable()

    def _build(self, progress: Progress | None, idle_s: float) -> dict[TopicPartitionKey, int]:
        ends = self.end_offsets()
        if self.fold:
            self._conn = self.engine.connect()
            self._transaction = self._conn.begin()
            self._store = RowStore(self._conn, FOLDED_TABLES)
        batch: list[Record] = []
        skipped: dict[TopicPartitionKey, int] = {}
        for messages in self.messages(ends, idle_s):
            batch.extend(self._decode(messages, skipped))
            if len(batch) >= self.chunk:
                self._apply_chunk(batch, skipped, progress)
                batch, skipped = [], {}
        if batch or skipped:
            self._apply_chunk(batch, skipped, progress)
        if self.fold:
            started = time.perf_counter()
            self._store.flush()
            self._transaction.commit()
            self._conn.close()
            self.stats.rows_loaded = self._store.loaded
            self.stats.rows_copied = self._store.written
            self.stats.seconds_apply += time.perf_counter() - started
        return ends

    def _fresh(self, records: list[Record]) -> list[Record]:
        """`postgres.fresh_records` with the positions in memory: the replay is their only writer."""
        fresh = []
        for record in records:
            env = record.envelope
            if env.sequence == 0:
                event_class = EVENT_TYPES.get(env.type)
                if event_class is not None and event_class.notice:
                    fresh.append(record)
                continue
            key = f"{env.aggregate_type}:{env.aggregate_id}"
            if env.sequence <= self.positions.get(key, 0):
                continue
            self.positions[key] = env.sequence
            fresh.append(record)
        return fresh

    def _apply_chunk(
        self, records: list[Record], skipped: dict[TopicPartitionKey, int], progress: Progress | None
    ) -> None:
        if self.fold:
            self._apply_folded(records, skipped, progress)
            return
        started = time.perf_counter()
        saved = dict(self.positions)
        fresh = self._fresh(records)
        try:
            with self.engine.begin() as conn:
                self.stats.rows += self._run_handlers(conn, fresh)
        except Exception:  # noqa: BLE001 - find the record(s) the live projector dead-lettered
            log.warning("a chunk of %d events failed; applying it one by one", len(fresh), exc_info=True)
            self.positions = saved
            fresh = self._fresh(records)
            with self.engine.begin() as conn:
                for record in fresh:
                    try:
                        with conn.begin_nested():
                            self.stats.rows += self._run_handlers(conn, [record])
                    except Exception as exc:  # noqa: BLE001
                        self.stats.failed += 1
                        where = f"{record.topic}[{record.partition}]@{record.offset}"
                        self.stats.failures.append(f"{where} {record.envelope.type}: {exc}")
        self.stats.applied += len(fresh)
        self.stats.seconds_apply += time.perf_counter() - started
        if progress is not None:
            progress(len(records) + len(skipped))

    def _apply_folded(
        self, records: list[Record], skipped: dict[TopicPartitionKey, int], progress: Progress | None
    ) -> None:
        """Folds in memory; any other event flushes the memory and runs its SQL handler."""
        started = time.perf_counter()
        store, conn = self._store, self._conn
        fresh = self._fresh(records)
        for record in fresh:
            env = record.envelope
            fold = FOLDS.get(env.type)
            try:
                if fold is not None:
                    self.stats.rows += fold(store, env)
                    continue
                handler = HANDLERS.get(env.type)
                if handler is None:
                    continue
                store.flush()
                self.stats.sql_events += 1
                with conn.begin_nested():
                    self.stats.rows += handler(conn, env)
            except Exception as exc:  # noqa: BLE001 - the live projector dead-lettered it too
                self.stats.failed += 1
                where = f"{record.topic}[{record.partition}]@{record.offset}"
                self.stats.failures.append(f"{where} {env.type}: {exc}")
        self.stats.applied += len(fresh)
        self.stats.seconds_apply += time.perf_counter() - started
        if progress is not None:
            progress(len(records) + len(skipped))

    @staticmethod
    def _run_handlers(conn: Connection, records: list[Record]) -> int:
        rows = 0
        for record in records:
            handler = HANDLERS.get(record.envelope.type)
            if handler is not None:
                rows += handler(conn, record.envelope)
        return rows

    # -- switch ----------------------------------------------------------------------------------
    def _write_bookkeeping(self, conn: Connection) -> None:
        """Positions (COPY), checkpoints and progress of the rebuilt schema, for the live projector."""
        conn.execute(text("DELETE FROM projection_positions WHERE projection = :p"), {"p": PROJECTION})
        buffer = io.StringIO()
        for aggregate, sequence in self.positions.items():
            buffer.write(f"{PROJECTION}\t{_copy_text(aggregate)}\t{sequence}\n")
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor().copy(
            "COPY projection_positions (projection, aggregate_id, sequence) FROM STDIN"
        ) as cp:
            cp.write(buffer.getvalue())
        offsets = {key: offset for key, offset in self.offsets.items()}
        conn.execute(text("DELETE FROM projection_checkpoints WHERE projection = :p"), {"p": PROJECTION})
        if offsets:
            conn.execute(
                text(
                    'INSERT INTO projection_checkpoints (projection, topic, partition, "offset") '
                    "VALUES (:p, :t, :n, :o)"
                ),
                [{"p": PROJECTION, "t": t, "n": n, "o": o} for (t, n), o in offsets.items()],
            )
        conn.execute(text("DELETE FROM projection_progress WHERE projection = :p"), {"p": PROJECTION})
        conn.execute(
            text("INSERT INTO projection_progress (projection, records, rows_written) VALUES (:p, :r, :w)"),
            {"p": PROJECTION, "r": self.stats.applied, "w": self.stats.rows},
        )

    def keep_built(self) -> None:
        """Without a switch: record the checkpoints and positions of what was built, for inspection."""
        with self.engine.begin() as conn:
            self._write_bookkeeping(conn)

    def switch(self, lock_timeout_s: float = 60.0) -> None:
        """Catch up with the live projector under its lock, then swap the schemas in one transaction."""
        started = time.perf_counter()
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PROJECTOR_LOCK})
            live = {
                (t, n): o
                for t, n, o in conn.execute(
                    text(
                        'SELECT topic, partition, "offset" FROM public.projection_checkpoints '
                        "WHERE projection = :p"
                    ),
                    {"p": PROJECTION},
                )
            }
            behind = {key: o for key, o in live.items() if o > self.offsets.get(key, -1)}
            if behind:
                self._catch_up(conn, behind)
            self._write_bookkeeping(conn)
            conn.exec_driver_sql(f'ALTER SCHEMA public RENAME TO "{self.old_schema}"')
            conn.exec_driver_sql(f'ALTER SCHEMA "{self.schema}" RENAME TO public')
        self.stats.seconds_switch = time.perf_counter() - started

    def _catch_up(self, conn: Connection, targets: dict[TopicPartitionKey, int]) -> None:
        """Apply, inside the switch transaction, what the live projector applied after the build."""
        consumer = self._open()
        deadline = time.monotonic() + 60
        remaining = dict(targets)
        skipped: dict[TopicPartitionKey, int] = {}
        while remaining:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read up to the live projector's checkpoints: {remaining}")
            messages = consumer.consume(5000, timeout=0.2)
            wanted = [
                m
                for m in messages
                if m.error() is None and m.offset() <= targets.get((m.topic(), m.partition()), -1)
            ]
            records = self._fresh(list(self._decode(wanted, skipped)))
            self.stats.caught_up_at_switch += len(wanted)
            self.stats.rows += self._run_handlers(conn, records)
            self.stats.applied += len(records)
            for m in messages:
                key = (m.topic(), m.partition())
                if m.error() is None and key in remaining and m.offset() >= remaining[key]:
                    del remaining[key]
            # records past the live checkpoint are the live projector's to apply: never record them
            for key, target in targets.items():
                if self.offsets.get(key, -1) > target:
                    self.offsets[key] = target

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.engine.dispose()
        self.admin.dispose()


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def read_model_tables(engine: Engine, schema: str = "public") -> list[str]:
    with engine.connect() as conn:
        return [
            name
            for (name,) in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
                {"s": schema},
            )
        ]


# bookkeeping columns that hold the wall-clock time of a write, not a fact from the log
WALL_CLOCK = {
    "projection_checkpoints": ["updated_at"],
    "projection_progress": ["updated_at", "records", "rows_written"],
}


def compare_schemas(engine: Engine, left: str, right: str) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows in left, rows only in left, rows only in right) comparing every column
    except the WALL_CLOCK ones; equal tables have zeros in the last two."""
    result: dict[str, tuple[int, int, int]] = {}
    left_tables, right_tables = set(read_model_tables(engine, left)), set(read_model_tables(engine, right))
    with engine.connect() as conn:
        for table in sorted(left_tables | right_tables):
            if table not in left_tables or table not in right_tables:
                result[table] = (-1, -1, -1)
                continue
            columns = [
                c
                for (c,) in conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
                        "AND table_name = :t ORDER BY ordinal_position"
                    ),
                    {"s": left, "t": table},
                )
                if c not in WALL_CLOCK.get(table, [])
            ]
            cols = ", ".join(f'"{c}"' for c in columns)
            count = conn.execute(text(f'SELECT count(*) FROM "{left}"."{table}"')).scalar_one()
            only_left = conn.execute(
                text(
                    f'SELECT count(*) FROM (SELECT {cols} FROM "{left}"."{table}" EXCEPT ALL '
                    f'SELECT {cols} FROM "{right}"."{table}") d'
                )
            ).scalar_one()
            only_right = conn.execute(
                text(
                    f'SELECT count(*) FROM (SELECT {cols} FROM "{right}"."{table}" EXCEPT ALL '
                    f'SELECT {cols} FROM "{left}"."{table}") d'
                )
            ).scalar_one()
            result[table] = (count, only_left, only_right)
    return result
