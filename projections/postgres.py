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
    covered, so no record is applied twice (counters would count it twice).

    One statement: the upsert creates a missing row and locks an existing one (in the partitions'
    order, so two batches never wait on each other crosswise), and returns the stored offsets."""
    parts = sorted({(r.topic, r.partition) for r in records})
    if not parts:
        return records
    rows = conn.execute(
        text(
            'INSERT INTO projection_checkpoints AS c (projection, topic, partition, "offset", updated_at) '
            "SELECT :p, t, n, -1, now() FROM unnest(CAST(:t AS text[]), CAST(:n AS integer[])) AS x(t, n) "
            "ORDER BY t, n ON CONFLICT (projection, topic, partition) "
            'DO UPDATE SET "offset" = c."offset" RETURNING c.topic, c.partition, c."offset"'
        ),
        {"p": projection, "t": [t for t, _ in parts], "n": [n for _, n in parts]},
    )
    applied = {(topic, partition): offset for topic, partition, offset in rows}
    return [r for r in records if r.offset > applied.get((r.topic, r.partition), -1)]


# the stored positions as they were, and the batch's newest sequences stored, in one statement (the
# WITH's parts share one snapshot: `old` does not see what `moved` writes)
_POSITIONS = text(
    "WITH old AS (SELECT aggregate_id, sequence FROM projection_positions "
    "WHERE projection = :p AND aggregate_id = ANY(:ids)), "
    "moved AS (INSERT INTO projection_positions AS pp (projection, aggregate_id, sequence) "
    "SELECT :p, a, s FROM unnest(CAST(:ids AS text[]), CAST(:s AS bigint[])) AS x(a, s) "
    "ON CONFLICT (projection, aggregate_id) DO UPDATE SET sequence = EXCLUDED.sequence "
    "WHERE pp.sequence < EXCLUDED.sequence) "
    "SELECT aggregate_id, sequence FROM old"
)


def fresh_records(conn: Connection, projection: str, records: list[Record]) -> list[Record]:
    """Drop events already applied (re-emitted by a worker after a crash): sequence <= stored position."""
    newest: dict[str, int] = {}
    for record in records:
        if record.envelope.sequence > 0:
            key = _key(record.envelope)
            newest[key] = max(newest.get(key, 0), record.envelope.sequence)
    positions: dict[str, int] = {}
    if newest:
        ids = sorted(newest)
        rows = conn.execute(_POSITIONS, {"p": projection, "ids": ids, "s": [newest[i] for i in ids]})
        positions = {aggregate_id: sequence for aggregate_id, sequence in rows}
    fresh: list[Record] = []
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
        positions[key] = env.sequence
        fresh.append(record)
    return fresh


def _key(env: Envelope) -> str:
    return f"{env.aggregate_type}:{env.aggregate_id}"


_CHECKPOINTS = (
    'INSERT INTO projection_checkpoints AS c (projection, topic, partition, "offset", updated_at) '
    "SELECT :p, t, n, o, now() "
    "FROM unnest(CAST(:t AS text[]), CAST(:n AS integer[]), CAST(:o AS bigint[])) AS x(t, n, o) "
    "ORDER BY t, n ON CONFLICT (projection, topic, partition) "
    'DO UPDATE SET "offset" = GREATEST(c."offset", EXCLUDED."offset"), updated_at = now()'
)
_PROGRESS = (
    "INSERT INTO projection_progress AS g (projection, records, rows_written, updated_at) "
    "VALUES (:p, :r, :w, now()) ON CONFLICT (projection) DO UPDATE SET "
    "records = g.records + EXCLUDED.records, rows_written = g.rows_written + EXCLUDED.rows_written, "
    "updated_at = now()"
)


def save_checkpoints(
    conn: Connection,
    projection: str,
    records: list[Record],
    skipped: dict[tuple[str, int], int],
    applied: int = 0,
    rows: int = 0,
) -> None:
    """The batch's checkpoints and, when it applied records, its count of them (`applied`, `rows`):
    one statement, in the batch's transaction."""
    offsets = highest_offsets(records, skipped)
    parts = sorted(offsets)
    params = {
        "p": projection,
        "t": [t for t, _ in parts],
        "n": [n for _, n in parts],
        "o": [offsets[k] for k in parts],
    }
    if offsets and applied:
        conn.execute(text(f"WITH saved AS ({_CHECKPOINTS}) {_PROGRESS}"), {**params, "r": applied, "w": rows})
    elif offsets:
        conn.execute(text(_CHECKPOINTS), params)
    elif applied:
        conn.execute(text(_PROGRESS), {"p": projection, "r": applied, "w": rows})
