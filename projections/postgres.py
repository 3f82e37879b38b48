"""Postgres engine, schema application and the transactional checkpoint/position bookkeeping."""

from __future__ import annotations

from importlib import resources

from sqlalchemy import Connection, Engine, create_engine, text

from spaktok.events.base import EVENT_TYPES
from spaktok.events.envelope import Envelope
from spaktok.projections.runner import Record, highest_offsets

# taken shared by every batch of the live projector and exclusively by `spaktok replay` to switch
PROJECTOR_LOCK = 424243


def live_lock(conn: Connection) -> None:
    """Pause here while a replay swaps the schemas; then resolve the tables in the new `public`."""
    conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": PROJECTOR_LOCK})


def make_engine(dsn: str) -> Engine:
    return create_engine(dsn, pool_size=10, max_overflow=10, pool_pre_ping=True)


def apply_schema(engine: Engine) -> None:
    """Create missing tables and indexes (idempotent)."""
    ddl = resources.files("spaktok.schemas").joinpath("postgres.sql").read_text()
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(424242)")  # one process applies at a time
        conn.exec_driver_sql(ddl)


def load_checkpoints(engine: Engine, projection: str) -> dict[tuple[str, int], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text('SELECT topic, partition, "offset" FROM projection_checkpoints WHERE projection = :p'),
            {"p": projection},
        )
        return {(topic, partition): offset for topic, partition, offset in rows}


def claim_records(conn: Connection, projection: str, records: list[Record]) -> list[Record]:
    """The records of this batch that no other process applied: a fence between projectors.

    Several projector processes share the partitions (docs/operations.md). One that stalled past the
    group's poll interval may still be applying a batch when the partition's new owner, positioned at
    the stored checkpoint, applies the same records. Locking the batch's checkpoint rows makes the two
    transactions take turns, and the second then sees the first's checkpoint and drops what it
    covered, so no record is applied twice (counters would count it twice)."""
    parts = sorted({(r.topic, r.partition) for r in records})
    if not parts:
        return records
    conn.execute(
        text(
            'INSERT INTO projection_checkpoints (projection, topic, partition, "offset", updated_at) '
            "VALUES (:p, :t, :n, -1, now()) ON CONFLICT (projection, topic, partition) DO NOTHING"
        ),
        [{"p": projection, "t": t, "n": n} for t, n in parts],
    )
    rows = conn.execute(
        text(
            'SELECT topic, partition, "offset" FROM projection_checkpoints WHERE projection = :p '
            "AND topic = ANY(:t) AND partition = ANY(:n) ORDER BY topic, partition FOR UPDATE"
        ),
        {"p": projection, "t": sorted({t for t, _ in parts}), "n": sorted({n for _, n in parts})},
    )
    applied = {(topic, partition): offset for topic, partition, offset in rows}
    return [r for r in records if r.offset > applied.get((r.topic, r.partition), -1)]


def fresh_records(conn: Connection, projection: str, records: list[Record]) -> list[Record]:
    """Drop events already applied (re-emitted by a worker after a crash): sequence <= stored position."""
    ids = sorted({_key(r.envelope) for r in records if r.envelope.sequence > 0})
    positions: dict[str, int] = {}
    if ids:
        rows = conn.execute(
            text(
                "SELECT aggregate_id, sequence FROM projection_positions "
                "WHERE projection = :p AND aggregate_id = ANY(:ids)"
            ),
            {"p": projection, "ids": ids},
        )
        positions = {aggregate_id: sequence for aggregate_id, sequence in rows}
    fresh: list[Record] = []
    moved: dict[str, int] = {}
    for record in records:
        env = record.envelope
        if env.sequence == 0:
            event_class = EVENT_TYPES.get(env.type)
            if event_class is not None and event_class.notice:
                fresh.append(record)  # notices: no sequence; their handlers are idempotent by id
            continue  # rejections change no read model
        key = _key(env)
        if env.sequence <= positions.get(key, 0):
            continue
        positions[key] = moved[key] = env.sequence
        fresh.append(record)
    if moved:
        conn.execute(
            text(
                "INSERT INTO projection_positions (projection, aggregate_id, sequence) VALUES (:p, :a, :s) "
                "ON CONFLICT (projection, aggregate_id) DO UPDATE SET sequence = EXCLUDED.sequence"
            ),
            [{"p": projection, "a": a, "s": s} for a, s in moved.items()],
        )
    return fresh


def _key(env: Envelope) -> str:
    return f"{env.aggregate_type}:{env.aggregate_id}"


def save_checkpoints(
    conn: Connection, projection: str, records: list[Record], skipped: dict[tuple[str, int], int]
) -> None:
    offsets = highest_offsets(records, skipped)
    if offsets:
        conn.execute(
            text(
                'INSERT INTO projection_checkpoints (projection, topic, partition, "offset", updated_at) '
                "VALUES (:p, :t, :n, :o, now()) ON CONFLICT (projection, topic, partition) "
                'DO UPDATE SET "offset" = GREATEST(projection_checkpoints."offset", EXCLUDED."offset"), '
                "updated_at = now()"
            ),
            [{"p": projection, "t": t, "n": n, "o": o} for (t, n), o in offsets.items()],
        )


def add_progress(conn: Connection, projection: str, records: int, rows: int) -> None:
    """Count what this transaction applied, in the same transaction."""
    conn.execute(
        text(
            "INSERT INTO projection_progress (projection, records, rows_written, updated_at) "
            "VALUES (:p, :r, :w, now()) ON CONFLICT (projection) DO UPDATE SET "
            "records = projection_progress.records + EXCLUDED.records, "
            "rows_written = projection_progress.rows_written + EXCLUDED.rows_written, updated_at = now()"
        ),
        {"p": projection, "r": records, "w": rows},
    )
