"""Edge batching: many viewers' joins, heartbeats and likes of one stream travel as one command.

Faust's cost is per Kafka message (DESIGN §4), so the API folds taps into `RecordLikes` /
`RecordHeartbeats` per stream (`RecordShardLikes` / `RecordShardHeartbeats` per shard of a hot
stream) every few milliseconds; each HTTP caller still gets its own answer, taken from the batch's outcome.

Joins (`JoinViewers`) are paced like the command bundler's records (Nagle): a join for a stream that
sent no batch within `join_window_ms` leaves at once, alone, so a quiet stream's viewer waits for
nothing; joins arriving sooner wait for the window's end and leave together. A viewer waits for
their playback URL, while a tap's answer is only a count, so joins get their own, shorter window.
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
from spaktok.commands.streams import (
    MAX_JOIN_BATCH,
    ArrivingViewer,
    JoinViewers,
    RecordHeartbeats,
    RecordLikes,
)

EDGE_ACTOR = "edge"
BEATS = ("beats", "shard-beats")  # batches of (user, at) rather than (action, user, taps)
JOIN_PACING_KEPT = 10_000  # streams whose last join batch time is kept before the quiet ones are dropped
BatchAnswer = tuple[str, Outcome | None]  # (the batch's command id, its outcome or None if undecided)


@dataclass
class _Pending:
    items: list[Any] = field(default_factory=list)
    waiters: list[asyncio.Future[BatchAnswer]] = field(default_factory=list)
    flusher: asyncio.TimerHandle | None = None


class EdgeBatcher:
    def __init__(self, bus: CommandBus, *, window_ms: int, max_items: int, join_window_ms: int = 0) -> None:
        self.bus = bus
        self.window = window_ms / 1000
        self.max_items = max_items
        self.join_window = join_window_ms / 1000
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._joins_sent_at: dict[str, float] = {}  # stream -> when its last batch of joins left
        self.batches_sent = 0

    async def join(self, stream_id: str, viewer: ArrivingViewer) -> BatchAnswer:
        """A viewer's join, decided with the others of the stream's batch; the answer to this viewer is
        `outcome.answers[user]` (absent: already watching)."""
        now = asyncio.get_running_loop().time()
        if len(self._joins_sent_at) > JOIN_PACING_KEPT:  # streams quiet for a window: as if never seen
            self._joins_sent_at = {s: t for s, t in self._joins_sent_at.items() if t > now - self.join_window}
        last = self._joins_sent_at.get(stream_id)
        delay = 0.0 if last is None else max(0.0, last + self.join_window - now)
        return await self._add(("joins", stream_id), viewer, delay=delay)

    async def like(self, stream_id: str, action_id: str, user_id: str, count: int) -> BatchAnswer:
        return await self._add(("likes", stream_id), (action_id, user_id, count))

    async def heartbeat(self, stream_id: str, user_id: str, at_ms: int) -> BatchAnswer:
        return await self._add(("beats", stream_id), (user_id, at_ms))

    async def shard_like(
        self, stream_id: str, shard: int, action_id: str, user_id: str, count: int
    ) -> BatchAnswer:
        """A like of a hot stream, batched per like shard (commands/stream_shards.py)."""
        return await self._add(
            ("shard-likes", stream_shard_id(stream_id, shard)), (action_id, user_id, count)
        )

    async def shard_heartbeat(self, stream_id: str, shard: int, user_id: str, at_ms: int) -> BatchAnswer:
        """A viewer's heartbeat on a hot stream, batched per shard (commands/stream_shards.py)."""
        return await self._add(("shard-beats", stream_shard_id(stream_id, shard)), (user_id, at_ms))

    async def _add(self, key: tuple[str, str], item: Any, delay: float | None = None) -> BatchAnswer:
        """Put `item` in the batch of `key` (kind, aggregate id); a new batch leaves `delay` seconds
        later (None: the edge window), or as soon as it is full."""
        loop = asyncio.get_running_loop()
        pending = self._pending.get(key)
        future: asyncio.Future[BatchAnswer] = loop.create_future()
        if pending is None:
            pending = self._pending[key] = _Pending()
            if delay != 0:
                pending.flusher = loop.call_later(self.window if delay is None else delay, self._flush, key)
        pending.items.append(item)
        pending.waiters.append(future)
        if delay == 0 or len(pending.items) >= self._most(key[0]):
            self._flush(key)
        return await future

    def _most(self, kind: str) -> int:
        return min(self.max_items, MAX_JOIN_BATCH) if kind == "joins" else self.max_items

    def _flush(self, key: tuple[str, str]) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.flusher is not None:
            pending.flusher.cancel()
        command = _batch_command(*key, pending.items)
        self.batches_sent += 1
        if key[0] == "joins":
            self._joins_sent_at[key[1]] = asyncio.get_running_loop().time()
        # each caller may be sent to the batch's status URL (202): it speaks for all of them
        users = frozenset(_user_of(key[0], item) for item in pending.items)
        self.bus.remember_actors(command.command_id, users)
        task = asyncio.ensure_future(self.bus.execute(command))
        task.add_done_callback(lambda t: _resolve(pending.waiters, command.command_id, t))


def _user_of(kind: str, item: Any) -> str:
    if kind == "joins":
        return str(item.user_id)
    return str(item[0] if kind in BEATS else item[1])


def _batch_command(kind: str, aggregate_id: str, items: list[Any]) -> Command:
    identity = {"command_id": str(uuid.uuid4()), "issued_at": clock.now(), "actor_id": EDGE_ACTOR}
    if kind == "joins":
        return JoinViewers(**identity, stream_id=aggregate_id, viewers=items)
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


def member_answer(batch: Outcome, user_id: str) -> Outcome:
    """An edge batch's outcome as `user_id`'s own (`Outcome.answers`): accepted, refused (why), or,
    not named, a no-op (a join of a viewer watching already). A refusal of the whole batch (the
    stream is not live) is everyone's. The other members' events and answers are left out: a
    caller learns nothing of who else was in the batch or why they were refused."""
    if batch.status == "rejected":
        return batch
    mine = batch.answers.get(user_id, {"status": "noop"})
    return batch.model_copy(
        update={
            "status": mine["status"],
            "reason": mine.get("reason"),
            "detail": mine.get("detail"),
            "events": [],
            "answers": {user_id: mine},
        }
    )
