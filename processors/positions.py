"""Where each command partition has been decided up to, kept in the worker's own state table.

Why not the consumer group's committed offset: the dev broker loses OffsetCommit data (its own
compatibility notes say so, and we measured it: after a SIGKILL and restart, partitions came back
with no committed offset or one past commands never decided, and Faust resumed *after* them, so
they were silently skipped). The worker therefore records "decided up to offset N" for every
partition in the aggregate state table, i.e. in the same changelog partition as the state that
command wrote, and written after it: whatever recovery restores, the position never claims more
than the restored state holds. A command at or below the position is a redelivery and is skipped;
a command above position + 1 means the consumer was placed past undecided commands, and we seek
back. Commands are admitted one by one as a batch is read and recorded as decided once the batch's
states are stored. The broker's commits remain only a hint for where fetching starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Table(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def put(self, key: str, value: bytes, partition: int) -> None: ...


class Consumer(Protocol):
    async def seek_wait(self, partitions: Mapping[Any, int]) -> None: ...
    async def earliest_offsets(self, *partitions: Any) -> Any: ...


class CommandPositions:
    def __init__(self, table: Table, consumer: Callable[[], Consumer]) -> None:
        self.table = table
        self.consumer = consumer  # looked up late: Faust creates its consumer when the worker starts
        self._seeking: dict[Any, int] = {}
        self._next: dict[Any, int] = {}  # next offset to decide per partition, as in the table

    @staticmethod
    def _key(tp: Any) -> str:
        # starts with NUL: no aggregate id can collide with it
        return f"\x00position:{tp.topic}:{tp.partition}"

    async def _next_offsets(self, tps: list[Any]) -> dict[Any, int]:
        """Right after the last decided command; the partition's start if none was decided yet."""
        offsets: dict[Any, int] = {}
        unknown = []
        for tp in tps:
            raw = self.table.get(self._key(tp))
            if raw is None:
                unknown.append(tp)
            else:
                offsets[tp] = int(raw) + 1
        if unknown:
            earliest = await self.consumer().earliest_offsets(*unknown)
            offsets.update({tp: earliest.get(tp) or 0 for tp in unknown})
        return offsets

    async def resume_offsets(self, assignment: set[Any], topic: str) -> dict[Any, int]:
        """Where to resume each assigned partition of `topic` (called after every recovery)."""
        offsets = await self._next_offsets([tp for tp in assignment if tp.topic == topic])
        self._next.update(offsets)
        return offsets

    async def admit(self, tp: Any, offset: int) -> bool:
        """True when the record at `offset` is the next one to decide on its partition."""
        if tp not in self._next:
            self._next.update(await self._next_offsets([tp]))
        expected = self._next[tp]
        if offset < expected:
            return False  # decided before a restart; its effects are in the log and the state
        if offset == expected:
            self._seeking.pop(tp, None)
            self._next[tp] = offset + 1
            return True
        if self._seeking.get(tp) != expected:
            log.warning(
                "%s:%s resumed at offset %s but %s is the next undecided command; seeking back",
                tp.topic,
                tp.partition,
                offset,
                expected,
            )
            self._seeking[tp] = expected
        # Seek again for every record past `expected`, not once: records fetched before the seek
        # still reach us after it, and Faust lets each through its own filter and raises its read
        # offset to it, so the records fetched again from `expected` would be dropped below that
        # offset, and the partition would never be decided again (bench/scale.py found it after a
        # rebalance). The stale records are finite; the last one's seek is the one that holds.
        # `seek_wait`, not `seek`: Faust's `seek` moves aiokafka's fetcher from this thread while the
        # consumer's own thread may be reading the fetcher's records, and that race crashed a worker's
        # fetcher with a KeyError (docs/decisions.md "A seek from the wrong thread"); `seek_wait`
        # runs the seek in the consumer's thread.
        await self.consumer().seek_wait({tp: expected})
        return False

    def forget(self, tp: Any) -> None:
        """The commands admitted on `tp` were not decided (their batch was abandoned): the next one
        to decide is the table's again, and `admit` seeks back to it if the partition stays here."""
        self._next.pop(tp, None)
        self._seeking.pop(tp, None)

    def decided(self, tp: Any, offset: int) -> None:
        """Record that the commands of `tp` up to `offset` are decided and their states stored."""
        self.table.put(self._key(tp), str(offset).encode(), tp.partition)
