"""A worker that lost its partitions while deciding a batch publishes and stores nothing of it.

Seen on the dev stack with a 1 M-viewer stream (issue #20): a long batch held a worker's event loop
past its group session, the group gave the stream's partition to the other worker, and both wrote
the stream's changelog. The old owner's deletions of the part versions it had replaced removed
parts the new owner's main record named, and both workers crashed on the next recovery ("part … is
missing from the table"). The first tests rebuild that with two workers' copies of one table and
their shared changelog, with and without the fence; the others check the fence's two moments and
that the timers pass over an aggregate that cannot be loaded instead of stopping the worker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_aggregate_runner import EVENTS, Broker, Table, records, runner
from test_stream_decider import comment, join, open_stream

from spaktok.processors.aggregate import AggregateRunner

Write = tuple[str, str, bytes | None]  # (put or delete, key, value)


class Replica:
    """One worker's copy of the table: writes land here and in the changelog both workers share."""

    def __init__(self, changelog: list[Write]) -> None:
        self.values: dict[str, bytes] = {}
        self.changelog = changelog

    @classmethod
    def recovered(cls, changelog: list[Write]) -> Replica:
        """The table as a worker rebuilds it from the changelog when the partition comes to it."""
        replica = cls(changelog)
        for op, key, value in changelog:
            if op == "put" and value is not None:
                replica.values[key] = value
            else:
                replica.values.pop(key, None)
        return replica

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def items(self) -> list[tuple[str, bytes]]:
        return list(self.values.items())

    def put(self, key: str, value: bytes, partition: int) -> None:
        self.values[key] = value
        self.changelog.append(("put", key, value))

    def delete(self, key: str, partition: int) -> None:
        self.values.pop(key, None)
        self.changelog.append(("delete", key, None))


def on(table: Any) -> AggregateRunner:
    return runner(table, Broker())  # type: ignore[arg-type]


def crowd(first: int, count: int, at: float) -> list[Any]:
    return [join(f"v{n:05d}", at) for n in range(first, first + count)]


def overlap(old_owner_still_owns: bool) -> Replica:
    """A 5,000-viewer stream; its partition moves; the old owner finishes a batch of joins after
    the new owner recovered the table, the new owner decides a comment; then the table is recovered
    once more, as the next rebalance would."""
    changelog: list[Write] = []
    old = Replica(changelog)
    old_runner = on(old)
    asyncio.run(old_runner.handle_batch(records(open_stream(), *crowd(0, 5000, 1))))
    new_runner = on(Replica.recovered(changelog))  # the new owner recovered before the old one wrote
    asyncio.run(old_runner.handle_batch(records(*crowd(5000, 20, 2)), lambda: old_owner_still_owns))
    asyncio.run(new_runner.handle_batch(records(comment("v00001", 3))))
    return Replica.recovered(changelog)


def test_two_writers_on_one_changelog_lose_a_part_the_last_main_record_names() -> None:
    """The corruption itself, as it happened without the fence (the old owner still believes it owns)."""
    with pytest.raises(RuntimeError, match="missing from the table"):
        on(overlap(old_owner_still_owns=True)).store.hold("s-1", 2)


def test_fenced_the_old_owner_writes_nothing_and_the_new_owners_state_is_recovered() -> None:
    recovered = on(overlap(old_owner_still_owns=False)).store.hold("s-1", 2).state
    assert (len(recovered.viewers), recovered.comments) == (5000, 1)  # the new owner's state, whole


def test_a_batch_whose_partition_moved_is_neither_published_nor_stored() -> None:
    table, broker = Table(), Broker()
    aggregate = runner(table, broker)
    assert asyncio.run(aggregate.handle_batch(records(open_stream()), lambda: True)) is True
    stored, sent = dict(table.values), len(broker.sent)

    assert asyncio.run(aggregate.handle_batch(records(join("ann", 1)), lambda: False)) is False

    assert table.values == stored and len(broker.sent) == sent


def test_a_partition_lost_during_the_publish_is_not_stored() -> None:
    table, broker = Table(), Broker()
    aggregate = runner(table, broker)
    asyncio.run(aggregate.handle_batch(records(open_stream())))
    stored = dict(table.values)
    answers = iter([True, False])  # owned when deciding, gone once published

    assert asyncio.run(aggregate.handle_batch(records(join("ann", 1)), lambda: next(answers))) is False

    assert table.values == stored
    assert [e["type"] for e in broker.on(EVENTS)][-1] == "streams.ViewerJoined"  # it was published


def test_the_timers_pass_over_an_aggregate_that_cannot_be_loaded() -> None:
    table, broker = Table(), Broker()
    asyncio.run(runner(table, broker).handle_batch(records(open_stream(), *crowd(0, 5000, 1))))
    part = next(key for key in table.values if key.startswith("s-1\x00viewers"))
    del table.values[part]  # a main record naming a part the table lacks
    assert runner(table, broker).active_ids() == []  # logged and passed over: it stopped the worker
