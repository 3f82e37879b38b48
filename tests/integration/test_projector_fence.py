"""The fence between projector processes (projections/postgres.py `claim_records`), on the real Postgres.

The bad case is built by hand: a stalled projector still holds a batch its partition's new owner has
applied meanwhile. The stale batch must apply nothing, and its checkpoint must not move back.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from harness import uid
from sqlalchemy import Engine, text

from spaktok.events.envelope import Envelope
from spaktok.projections import postgres
from spaktok.projections.runner import Record

pytestmark = pytest.mark.integration

TOPIC = "spaktok.events.streams"


def records(first: int, last: int, partition: int = 0) -> list[Record]:
    envelope = Envelope(
        event_id="e",
        type="streams.LikesRecorded",
        schema_version=1,
        aggregate_type="stream",
        aggregate_id="st_fence",
        sequence=1,
        occurred_at=datetime.now(UTC),
        causation_id="c",
        correlation_id="c",
        actor_id="edge",
        payload={},
    )
    return [Record(TOPIC, partition, offset, envelope) for offset in range(first, last + 1)]


def checkpoint(pg: Engine, projection: str, partition: int = 0) -> int:
    with pg.connect() as conn:
        return int(
            conn.execute(
                text(
                    'SELECT "offset" FROM projection_checkpoints WHERE projection = :p AND topic = :t '
                    "AND partition = :n"
                ),
                {"p": projection, "t": TOPIC, "n": partition},
            ).scalar_one()
        )


def test_a_batch_the_new_owner_applied_is_dropped_and_the_checkpoint_never_moves_back(pg: Engine) -> None:
    projection = uid("fence")
    with pg.begin() as conn:  # the new owner applied up to 150
        assert len(postgres.claim_records(conn, projection, records(100, 150))) == 51
        postgres.save_checkpoints(conn, projection, records(100, 150), {})
    with pg.begin() as conn:  # the stalled one comes back with 100-120, and a later partition's record
        stale = records(100, 120) + records(7, 7, partition=1)
        claimed = postgres.claim_records(conn, projection, stale)
        assert [(r.partition, r.offset) for r in claimed] == [(1, 7)]
        postgres.save_checkpoints(conn, projection, stale, {})
    assert checkpoint(pg, projection) == 150
    assert checkpoint(pg, projection, partition=1) == 7


def test_two_owners_applying_at_once_take_turns(pg: Engine) -> None:
    projection = uid("fence")
    claimed_by_second: list[int] = []
    first_holds = threading.Event()

    def second_owner() -> None:
        first_holds.wait(10)
        with pg.begin() as conn:  # waits for the first's lock, then sees its checkpoint
            claimed = postgres.claim_records(conn, projection, records(0, 9))
            claimed_by_second.extend(r.offset for r in claimed)
            postgres.save_checkpoints(conn, projection, records(0, 9), {})

    thread = threading.Thread(target=second_owner)
    thread.start()
    with pg.begin() as conn:
        assert len(postgres.claim_records(conn, projection, records(0, 9))) == 10
        first_holds.set()
        time.sleep(0.5)  # the second owner is waiting on the checkpoint rows now
        postgres.save_checkpoints(conn, projection, records(0, 9), {})
    thread.join(10)
    assert claimed_by_second == []
    assert checkpoint(pg, projection) == 9


def event(aggregate_id: str, sequence: int) -> Record:
    envelope = records(0, 0)[0].envelope.model_copy(
        update={"aggregate_id": aggregate_id, "sequence": sequence}
    )
    return Record(TOPIC, 0, sequence, envelope)


def test_events_at_or_below_the_stored_position_are_dropped_within_and_across_batches(pg: Engine) -> None:
    """`fresh_records` reads the stored positions and stores the batch's newest in one statement: what
    it compares with must be the positions as they were before this batch."""
    projection = uid("positions")

    def fresh(batch: list[Record]) -> list[tuple[str, int]]:
        with pg.begin() as conn:
            kept = postgres.fresh_records(conn, projection, batch)
        return [(r.envelope.aggregate_id, r.envelope.sequence) for r in kept]

    first = [event("st_a", 1), event("st_a", 2), event("st_a", 2), event("st_b", 1)]
    assert fresh(first) == [("st_a", 1), ("st_a", 2), ("st_b", 1)]  # the copy of 2 in the batch: dropped
    again = [event("st_a", 2), event("st_a", 3), event("st_b", 1), event("st_b", 2)]  # re-emitted 2, 1
    assert fresh(again) == [("st_a", 3), ("st_b", 2)]
    assert fresh([event("st_a", 1), event("st_b", 2)]) == []
    with pg.connect() as conn:
        stored = conn.execute(
            text("SELECT aggregate_id, sequence FROM projection_positions WHERE projection = :p"),
            {"p": projection},
        )
        assert sorted(stored) == [("stream:st_a", 3), ("stream:st_b", 2)]
