"""The worker's own command positions (processors/positions.py) against Faust's read-offset filter.

After a rebalance the consumer may deliver records past the next undecided command; the worker seeks
back. Records fetched before that seek still arrive after it, and Faust passes each one whose offset
is at or above its read offset and raises the read offset to it. This builds that case by hand: a
partition whose next undecided command is 692 resumes at 725 with 725-740 already in flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from spaktok.processors.positions import CommandPositions

TP = ("spaktok.commands.streams", 5)


@dataclass(frozen=True)
class Tp:
    topic: str
    partition: int


@dataclass
class FaustLikeConsumer:
    """Faust's consumer as far as positions go: `seek_wait` resets its read offset and where the next
    fetch starts; a record reaches the agent only if its offset is at or above the read offset,
    which then moves to it (faust/transport/consumer.py, `_drain_messages`)."""

    log_end: int
    in_flight: list[int]
    read_offset: int | None = None
    fetch_from: int = 0
    seeks: list[int] = field(default_factory=list)

    async def seek_wait(self, partitions: dict[Any, int]) -> None:
        (offset,) = partitions.values()
        self.seeks.append(offset)
        self.read_offset = offset
        self.fetch_from = offset

    async def earliest_offsets(self, *partitions: Any) -> Any:
        return dict.fromkeys(partitions, 0)

    def next_record(self) -> int | None:
        """The next record the agent gets (None: nothing more to fetch)."""
        while True:
            if self.in_flight:
                offset = self.in_flight.pop(0)
            elif self.fetch_from < self.log_end:
                offset = self.fetch_from
                self.fetch_from += 1
            else:
                return None
            if self.read_offset is None or offset >= self.read_offset:
                self.read_offset = offset
                return offset


class Table(dict[str, bytes]):
    def put(self, key: str, value: bytes, partition: int) -> None:
        self[key] = value


def decide_all(consumer: FaustLikeConsumer, decided_up_to: int) -> list[int]:
    tp = Tp(*TP)
    table = Table({CommandPositions._key(tp): str(decided_up_to).encode()})
    positions = CommandPositions(table, lambda: consumer)  # type: ignore[arg-type]

    async def run() -> list[int]:
        admitted = []
        while (offset := consumer.next_record()) is not None:
            if await positions.admit(tp, offset):
                admitted.append(offset)
                positions.decided(tp, offset)
        return admitted

    return asyncio.run(run())


def test_a_partition_resumed_past_its_undecided_commands_decides_every_one_in_order() -> None:
    consumer = FaustLikeConsumer(log_end=800, in_flight=list(range(725, 741)), fetch_from=741)
    assert decide_all(consumer, decided_up_to=691) == list(range(692, 800))
    assert set(consumer.seeks) == {692}


def test_a_partition_resumed_where_it_should_needs_no_seek() -> None:
    consumer = FaustLikeConsumer(log_end=800, in_flight=[], fetch_from=692)
    assert decide_all(consumer, decided_up_to=691) == list(range(692, 800))
    assert consumer.seeks == []
