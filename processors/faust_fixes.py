"""Narrow patches to faust-streaming that the dev broker needs; each is measured, not guessed.

1. `fetch_max_wait_ms`: Faust hard-codes aiokafka's 1500 ms. The dev broker answers a fetch only
   when that wait expires, which put ~0.7 s on every command round trip. The wait is the
   `worker_fetch_wait_ms` setting instead: each fetch costs the dev broker CPU per partition
   (docs/decisions.md "Fetch waits"), so it is a trade of latency per hop against broker CPU.

2. Recovery highwaters by fence. Table recovery reads each changelog partition up to the offset
   that ListOffsets(latest) reports. The dev broker reports the *base offset of the last batch*
   there, not the end (a partition holding 858 records answered 845; docs/decisions.md),
   so Faust stopped recovery one batch short and the worker restarted with stale
   aggregate state: it then re-used sequence numbers already in the log and the projectors
   rightly dropped those events as duplicates. Instead of asking for the end, we append a fence
   record to each changelog partition and recover up to the offset the produce acknowledged.
   Everything acknowledged before the fence is therefore recovered, on any broker. The fence key
   starts with a NUL byte, which no aggregate id can, so it never shadows real state.

3. Resume positions. After recovery Faust seeks each partition to the consumer group's committed
   offset, which the dev broker loses or garbles (see `processors/positions.py`). Right after that
   seek we seek again, to the positions the worker recorded in its own tables
   (`app.spaktok_resume_offsets`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faust.transport.drivers.aiokafka import Transport
    from faust.types import TP
    from faust.types.transports import ConsumerT

FETCH_MAX_WAIT_MS = 20  # replaced by `apply(fetch_wait_ms)`
FENCE_KEY = b"\x00spaktok-recovery-fence"
FENCE_VALUE = b"fence"


def _shorten_fetch_wait() -> None:
    from faust.transport.drivers import aiokafka as driver

    thread_cls = driver.AIOKafkaConsumerThread
    original = thread_cls._create_worker_consumer

    def create_worker_consumer(self: driver.AIOKafkaConsumerThread, transport: Transport) -> Any:
        # Any: the AIOKafkaConsumer, and aiokafka ships no types
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    # A deliberate patch (mypy still checks that the signature matches: [assignment])
    thread_cls._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


def _fence_recovery_highwaters() -> None:
    from faust.tables.recovery import Recovery

    async def build_highwaters(
        self: Recovery, consumer: ConsumerT, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        ordered = sorted(tps)
        acks = await asyncio.gather(
            *(
                self.app.producer.send_and_wait(tp.topic, FENCE_KEY, FENCE_VALUE, tp.partition, None, None)
                for tp in ordered
            )
        )
        # Faust reads a partition until its offset reaches the highwater: the fence is the last record
        destination.clear()
        destination.update({tp: ack.offset for tp, ack in zip(ordered, acks, strict=True)})
        self.log.info("Recovery highwaters (%s) fenced at %s", title, dict(destination))

    # A deliberate patch (mypy still checks that the signature matches: [assignment])
    Recovery._build_highwaters = build_highwaters  # type: ignore[method-assign]


def _resume_from_own_positions() -> None:
    from faust.transport.consumer import Consumer

    original = Consumer.perform_seek

    async def perform_seek(self: Consumer) -> None:
        await original(self)
        resume_offsets = getattr(self.app, "spaktok_resume_offsets", None)
        if resume_offsets is not None:
            offsets = await resume_offsets(self.assignment())
            # in the consumer's thread, as Faust's own seeks here are (see positions.py `admit`)
            await self.seek_wait(offsets)
            self.log.info("Resumed command partitions at the worker's own positions: %s", offsets)

    # A deliberate patch (mypy still checks that the signature matches: [assignment])
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]


_applied = False


def apply(fetch_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Idempotent; call before the Faust app is created."""
    global _applied, FETCH_MAX_WAIT_MS
    FETCH_MAX_WAIT_MS = fetch_wait_ms
    if not _applied:
        _shorten_fetch_wait()
        _fence_recovery_highwaters()
        _resume_from_own_positions()
        _applied = True
