"""Edge batching: many viewers' heartbeats and likes of one stream travel as one command.

Faust's cost is per Kafka message (DESIGN §4), so the API folds taps into `RecordLikes` /
`RecordHeartbeats` per stream (`RecordShardLikes` / `RecordShardHeartbeats` per shard of a hot
stream) every few milliseconds; each HTTP caller still gets its own answer, taken from the batch's outcome.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spaktok import clock
from spaktok.api.bus import CommandBus
from spaktok.commands.base import Command
from spaktok.commands.outcome import Outcome
from spaktok.commands.stream_shards import (
    RecordShardHeartbeats,
    RecordShardLikes,
    shard_address,
    stream_shard_id,
)
from spaktok.commands.streams import RecordHeartbeats, RecordLikes

EDGE_ACTOR = "edge"
BEATS = ("beats", "shard-beats")  # batches of (user, at) rather than (action, user, taps)
BatchAnswer = tuple[str, Outcome | None]  # (the batch's command id, its outcome or None if undecided)


@dataclass
class _Pending:
    items: list[Any] = field(default_factory=list)
    waiters: list[asyncio.Future[BatchAnswer]] = field(default_factory=list)
    flusher: asyncio.TimerHandle | None = None


class EdgeBatcher:
    def __init__(self, bus: CommandBus, *, window_ms: int, max_items: int) -> None:
        self.bus = bus
        self.window = window_ms / 1000
        self.max_items = max_items
        self._pending: dict[tuple[str, str], _Pending] = {}
        self.batches_sent = 0

    async def like(self, stream_id: str, action_id: str, user_id: str, count: int) -> BatchAnswer:
        return await self._add("likes", stream_id, (action_id, user_id, count))

    async def heartbeat(self, stream_id: str, user_id: str, at_ms: int) -> BatchAnswer:
        return await self._add("beats", stream_id, (user_id, at_ms))

    async def shard_like(
        self, stream_id: str, shard: int, action_id: str, user_id: str, count: int
    ) -> BatchAnswer:
        """A like of a hot stream, batched per like shard (commands/stream_shards.py)."""
        return await self._add("shard-likes", stream_shard_id(stream_id, shard), (action_id, user_id, count))

    async def shard_heartbeat(self, stream_id: str, shard: int, user_id: str, at_ms: int) -> BatchAnswer:
        """A viewer's heartbeat on a hot stream, batched per shard (commands/stream_shards.py)."""
        return await self._add("shard-beats", stream_shard_id(stream_id, shard), (user_id, at_ms))

    async def _add(self, kind: str, stream_id: str, item: Any) -> BatchAnswer:
        loop = asyncio.get_running_loop()
        key = (kind, stream_id)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
            pending.flusher = loop.call_later(self.window, self._flush, key)
        future: asyncio.Future[BatchAnswer] = loop.create_future()
        pending.items.append(item)
        pending.waiters.append(future)
        if len(pending.items) >= self.max_items:
            self._flush(key)
        return await future

    def _flush(self, key: tuple[str, str]) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.flusher is not None:
            pending.flusher.cancel()
        command = _batch_command(*key, pending.items)
        self.batches_sent += 1
        # each caller may be sent to the batch's status URL (202): it speaks for all of them
        users = frozenset(item[0] if key[0] in BEATS else item[1] for item in pending.items)
        self.bus.remember_actors(command.command_id, users)
        task = asyncio.ensure_future(self.bus.execute(command))
        task.add_done_callback(lambda t: _resolve(pending.waiters, command.command_id, t))


def _batch_command(kind: str, aggregate_id: str, items: list[Any]) -> Command:
    identity = {"command_id": str(uuid.uuid4()), "issued_at": clock.now(), "actor_id": EDGE_ACTOR}
    if kind == "shard-likes":
        return RecordShardLikes(**identity, **shard_address(aggregate_id), likes=items)
    if kind == "shard-beats":
        return RecordShardHeartbeats(**identity, **shard_address(aggregate_id), beats=items)
    make: Callable[..., Command] = RecordLikes if kind == "likes" else RecordHeartbeats
    return make(**identity, stream_id=aggregate_id, **{kind: items})


def _resolve(
    waiters: list[asyncio.Future[BatchAnswer]], command_id: str, task: asyncio.Future[Outcome | None]
) -> None:
    outcome = None if task.cancelled() or task.exception() is not None else task.result()
    for future in waiters:
        if not future.done():
            future.set_result((command_id, outcome))
