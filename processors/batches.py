"""The decider agents' batches: opened by the first command that arrives, closed `within` later.

Faust's `Stream.take_events(max_, within)` yields whatever arrived every `within` seconds: its loop
waits for a full buffer with `within` as the timeout, empty or not. With the deciders' 5 ms
(`worker_batch_wait_ms`), seven agents turned that loop ~1,400 times a second, each turn a
`Service.wait` with its tasks and timer: 0.11 of a core with no traffic at all (measured with
`bench/load.py`'s stack: the idle worker used 0.20 cores at 5 ms and 0.09 at 50 ms), and as much
under load. `take_batches` waits for the first event without a timer; only then does `within` run.
A batch's latency is unchanged (at most `within` after its first command; take_events' average
was half that, its worst the same).

It works as take_events does, through the stream's public hooks plus one internal call (marked):
a processor appends each event to the open batch (the stream's passive drainer feeds it), acks
are manual (an event is acked after its batch was handled, so a crash redelivers it) and a full
batch holds the drainer until it has been handed over. tests/unit/test_batches.py drives it through
a real Faust app and stream of the pinned version; the integration suite runs every decider on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from spaktok.commands.stream_shards import SweepShardViewers
from spaktok.commands.streams import RecordAnalyticsSnapshot, SweepViewers
from spaktok.processors.bundling import Incoming


async def take_batches(stream: Any, max_: int, within: float) -> AsyncIterator[list[Any]]:
    """Lists of at most `max_` events; a list is yielded `within` seconds after its first event
    arrived, or as soon as it is full. Its events are acked when the caller asks for the next."""
    batch: list[Any] = []
    arrived = asyncio.Event()  # the open batch holds an event
    full = asyncio.Event()  # the open batch holds max_ events
    room = asyncio.Event()  # the open batch may take more (cleared while it is full)
    room.set()

    async def collect(value: Any) -> Any:
        while not room.is_set():
            await room.wait()
        batch.append(stream.current_event)
        arrived.set()
        if len(batch) >= max_:
            full.set()
            room.clear()
        return value

    acks_were = stream.enable_acks
    stream.enable_acks = False  # acked by hand, after the batch was handled
    stream.add_processor(collect)
    stream._enable_passive(stream.channel.__aiter__())  # internal: the drainer take_events starts too
    try:
        while not stream.should_stop:
            if await stream.wait_for_stopped(arrived):  # no timer while nothing arrives
                break
            if not full.is_set() and within > 0:
                await stream.wait_for_stopped(full, timeout=within)
            taken = batch[:]
            del batch[:]
            arrived.clear()
            full.clear()
            room.set()  # the next batch fills while this one is handled
            yield taken
            for event in taken:
                await stream.ack(event)
    finally:
        stream.enable_acks = acks_were
        stream._processors.remove(collect)


SLICE_BYTES = 256 * 1024  # command bytes a decider decides, publishes and stores before it yields
# Commands whose decision reads every viewer of their aggregate, whatever their size: a shard's
# minute sweep (~35 ms per 125,000 viewers in process, 4 shards of a 1 M stream swept in one batch
# held a worker 0.5-0.9 s on the dev stack), a stream's sweep and its analytics snapshot.
WHOLE_SCANS = frozenset(
    kind.model_fields["type"].default.encode()
    for kind in (SweepShardViewers, SweepViewers, RecordAnalyticsSnapshot)
)


def decided_alone(headers: Any) -> bool:
    """Whether a command record, by its `command-type` header, is one of the `WHOLE_SCANS`."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return any(key == "command-type" and value in WHOLE_SCANS for key, value in pairs)


def slices(records: list[Incoming], max_bytes: int = SLICE_BYTES) -> list[list[Incoming]]:
    """A batch cut, in order, into runs of at most `max_bytes` of command records (one record at
    least): each is decided, published and stored before the next, with the event loop free
    between them.

    A batch's size is Faust's (up to `worker_batch_size` records), not its work: 1,000 `JoinViewers`
    of 250 viewers held a worker's event loop for 36 s at a million viewers, and everything else on
    it waited (its shards' folds, Faust's keepalive, the group's heartbeats). A command's bytes
    follow its work closely enough (a join batch carries each viewer, a like batch each tap) to
    bound that hold to about a quarter of a second. The exceptions are small commands that read a
    whole aggregate (`Incoming.alone`, the `WHOLE_SCANS`): each is a slice of its own.
    """
    result: list[list[Incoming]] = []
    size = 0
    for record in records:
        weight = max_bytes if record.alone else len(record.value)
        if not result or (size + weight > max_bytes and result[-1]):
            result.append([])
            size = 0
        result[-1].append(record)
        size += weight
    return result
