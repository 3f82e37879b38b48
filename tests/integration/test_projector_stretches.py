"""A busy batch written in stretches (projections/stretches.py: each batch handler's events of a
stretch as one run) must leave every table as the same events one at a time would.

A seeded log of every batch-handled kind, interleaved over two streams and five users so that the
same viewer joins, beats, comments, gifts, leaves and joins again within a batch, with a few events
of other kinds between them; the running figures are random and the times out of order, so the
tables show which event's figure won. Applied twice into the same Postgres under two prefixes: in
batches of the whole log and of 40, and one record per batch. Every row of every table they write
must be the same."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import uid
from sqlalchemy import Engine, text

from spaktok.events.base import Event
from spaktok.events.broadcasters import UserFollowed
from spaktok.events.earnings import EarningsCredited
from spaktok.events.envelope import Envelope
from spaktok.events.examples import example_event
from spaktok.events.streams import (
    CommentPosted,
    GiftReceived,
    HeartbeatsRecorded,
    LikesRecorded,
    StreamStarted,
    StreamUpdated,
    ViewerJoined,
    ViewerLeft,
)
from spaktok.events.wallets import CoinsPurchased, GiftDebited
from spaktok.projections import stream_runs, stretches
from spaktok.projections.runner import Record
from spaktok.projections.streams import BATCH_HANDLERS, PostgresStreamsProjector

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 3, 12, tzinfo=UTC)
# what each table is filtered by: its rows of one prefix
TABLES = {
    "live_streams": "stream_id",
    "stream_viewers": "stream_id",
    "stream_comments": "stream_id",
    "stream_likes": "stream_id",
    "stream_gifts": "stream_id",
    "stream_gifters": "stream_id",
    "wallets": "user_id",
    "coin_transactions": "user_id",
    "earnings": "broadcaster_id",
    "earnings_history": "broadcaster_id",
    "follows": "follower_id",
}


class Log:
    """A seeded interleaved log under one prefix: the same seed, the same events but for the prefix."""

    def __init__(self, prefix: str, seed: int) -> None:
        self.p = prefix
        self.rng = random.Random(seed)
        self.sequences: Counter[str] = Counter()
        self.envs: list[Envelope] = []

    def at(self) -> datetime:
        return T0 + timedelta(seconds=self.rng.randint(0, 900))  # out of order on purpose

    def figure(self) -> int:
        return self.rng.randint(0, 10_000)

    def emit(self, event: Event, aggregate_id: str) -> None:
        key = f"{event.aggregate_type}:{aggregate_id}"
        self.sequences[key] += 1
        payload = event.model_dump(mode="json", exclude={"type"})
        self.envs.append(
            Envelope(
                event_id=f"{self.p}ev{len(self.envs)}",
                type=event.type,
                schema_version=1,
                aggregate_type=event.aggregate_type,
                aggregate_id=aggregate_id,
                sequence=self.sequences[key],
                occurred_at=T0,
                causation_id="c",
                correlation_id="c",
                actor_id="a",
                payload=payload,
            )
        )

    def like(self, cls: type[Event], **fields: Any) -> Event:
        return example_event(cls).model_copy(update=fields)

    def build(self, events: int) -> list[Envelope]:
        streams = [f"{self.p}s{i}" for i in range(2)]
        users = [f"{self.p}u{i}" for i in range(5)]
        for s in streams:
            self.emit(self.like(StreamStarted, stream_id=s, user_id=f"{s}host", started_at=T0), s)
        kinds = [self.join, self.leave, self.beats, self.comment, self.likes, self.gift, self.purchase]
        weights = [5, 3, 4, 6, 4, 2, 1]
        for _ in range(events):
            s, u = self.rng.choice(streams), self.rng.choice(users)
            if self.rng.random() < 0.03:  # a kind without a batch handler ends a stretch
                self.other(s, u)
            else:
                self.rng.choices(kinds, weights)[0](s, u, users)
        return self.envs

    def join(self, s: str, u: str, _: list[str]) -> None:
        v, p, t = self.figure(), self.figure(), self.figure()
        event = ViewerJoined(
            user_id=u, username=u, joined_at=self.at(), viewer_count=v, peak_viewer_count=p, total_views=t
        )
        self.emit(event, s)

    def leave(self, s: str, u: str, _: list[str]) -> None:
        event = ViewerLeft(
            user_id=u, left_at=self.at(), watch_time=self.figure(), reason="left", viewer_count=self.figure()
        )
        self.emit(event, s)

    def beats(self, s: str, _: str, users: list[str]) -> None:
        beats = {u: self.at() for u in self.rng.sample(users, self.rng.randint(1, 3))}
        self.emit(HeartbeatsRecorded(beats=beats, count=len(beats), viewer_count=self.figure()), s)

    def comment(self, s: str, u: str, _: list[str]) -> None:
        n = len(self.envs)
        event = CommentPosted(
            comment_id=f"{self.p}cm{n}", user_id=u, username=u, text=f"#{n}", posted_at=self.at(),
            comments=self.figure(),
        )  # fmt: skip
        self.emit(event, s)

    def likes(self, s: str, _: str, users: list[str]) -> None:
        likes = {u: self.rng.randint(1, 9) for u in self.rng.sample(users, self.rng.randint(1, 3))}
        event = LikesRecorded(
            likes=likes, count=sum(likes.values()), total_likes=self.figure(), recorded_at=self.at(),
            action_ids=[],
        )  # fmt: skip
        self.emit(event, s)

    def gift(self, s: str, u: str, _: list[str]) -> None:
        tx, at = f"{self.p}tx{len(self.envs)}", self.at()
        debit = self.like(
            GiftDebited, gift_tx=tx, stream_id=s, coins=10, balance=self.figure(), debited_at=at
        )
        self.emit(debit, u)
        received = self.like(
            GiftReceived, gift_tx=tx, sender_id=u, sender_username=u, receiver_id=f"{s}host", sent_at=at,
            gifts=self.figure(), gift_revenue=self.figure(), sender_total_coins=self.figure(),
        )  # fmt: skip
        self.emit(received, s)
        credited = self.like(
            EarningsCredited, stream_id=s, gift_tx=tx, sender_id=u, coins=5, balance=self.figure(),
            credited_at=at,
        )  # fmt: skip
        self.emit(credited, f"{s}host")

    def purchase(self, _: str, u: str, __: list[str]) -> None:
        event = self.like(
            CoinsPurchased, payment_ref=f"{self.p}pay{len(self.envs)}", coins=100, balance=self.figure(),
            purchased_at=self.at(),
        )  # fmt: skip
        self.emit(event, u)

    def other(self, s: str, u: str) -> None:
        if self.rng.random() < 0.5:
            self.emit(UserFollowed(followee_id=f"{s}host", followed_at=self.at()), u)
        else:
            self.emit(StreamUpdated(changes={"title": f"t{len(self.envs)}"}, updated_at=self.at()), s)


def _apply(pg: Engine, envs: list[Envelope], size: int) -> int:
    topic = uid("test.stretches")  # its own topic: no other test's checkpoint fences these records
    records = [Record(topic, 0, offset, env) for offset, env in enumerate(envs)]
    projector = PostgresStreamsProjector(pg)
    return sum(projector.apply(records[i : i + size], {}) for i in range(0, len(records), size))


def _tables(pg: Engine, prefix: str) -> dict[str, list[str]]:
    """Every row of each table under `prefix`, the prefix taken out, as sorted text."""
    out = {}
    with pg.connect() as conn:
        for table, column in TABLES.items():
            rows = conn.execute(text(f"SELECT * FROM {table} WHERE {column} LIKE :p"), {"p": prefix + "%"})
            out[table] = sorted(repr(tuple(row)).replace(prefix, "") for row in rows)
    return out


@pytest.mark.parametrize("size", [10_000, 40])
def test_a_batch_in_stretches_leaves_every_table_as_one_event_at_a_time(pg: Engine, size: int) -> None:
    seed = 20261203
    gathered, alone = uid("sx") + "-", uid("sx") + "-"
    envs = Log(gathered, seed).build(400)
    planned = stretches.plan(envs, BATCH_HANDLERS, stream_runs.footprint, stream_runs.stream_figures)
    gathered_runs = [run for handler, run in planned if handler is not None and len(run) > 1]
    assert len(gathered_runs) > 50, "the log should gather into runs, or this test shows nothing"
    assert _apply(pg, envs, size) == _apply(pg, Log(alone, seed).build(400), 1)
    want, got = _tables(pg, alone), _tables(pg, gathered)
    for table in TABLES:
        assert want[table], f"the log wrote no {table} row: this test would not see a wrong one"
        assert got[table] == want[table], table
