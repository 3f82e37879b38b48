"""The deciders' batches (processors/batches.py) on a real Faust agent and stream of the pinned
version (Faust's agent test context: its own channel, no broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import faust

from spaktok.processors.batches import take_batches

WITHIN = 0.05


def _run(take: Callable[[Any], AsyncIterator[list[Any]]], puts: list[list[int]]) -> tuple[list[Any], int]:
    """Each group of `puts` sent at once, 0.2 s apart, to an agent that batches with `take`: the
    batches (values, seconds after their group was sent, whether their events were acked once the
    next batch was asked for) and how often the agent woke while waiting."""
    app = faust.App(f"t-batches-{time.monotonic_ns()}")
    batches: list[Any] = []
    taken: list[Any] = []
    wakes = [0]
    sent = [0.0]

    async def decider(stream: Any) -> None:
        waited = stream.wait_for_stopped

        async def counted(*args: Any, **kwargs: Any) -> Any:
            wakes[0] += 1
            return await waited(*args, **kwargs)

        stream.wait_for_stopped = counted
        async for events in take(stream):
            taken.append(events)
            batches.append(([e.value for e in events], time.monotonic() - sent[0]))

    agent = app.agent(name="decider")(decider)

    async def drive() -> None:
        async with agent.test_context() as context:
            for group in puts:
                sent[0] = time.monotonic()
                for value in group:
                    await context.put(value, wait=False)
                await asyncio.sleep(0.2)

    asyncio.run(drive())
    acked = [all(e.message.acked for e in events) for events in taken]
    return [(values, seconds, ok) for (values, seconds), ok in zip(batches, acked, strict=True)], wakes[0]


def test_a_batch_closes_when_full_or_within_its_wait_after_its_first_event() -> None:
    batches, _ = _run(lambda stream: take_batches(stream, 3, WITHIN), [[0, 1, 2, 3, 4, 5, 6], [100], []])
    assert [values for values, _, _ in batches] == [[0, 1, 2], [3, 4, 5], [6], [100]]
    full, rest, single = batches[0][1], batches[2][1], batches[3][1]
    assert full < WITHIN  # a full batch does not wait
    assert WITHIN <= rest < WITHIN + 0.1 and WITHIN <= single < WITHIN + 0.1  # at most `within` late
    assert all(acked for _, _, acked in batches[:-1])  # each acked once the agent asked for the next


def test_nothing_wakes_the_agent_while_no_command_arrives() -> None:
    """0.6 s, one command: take_batches waits twice per batch; Faust's take_events (pinned
    version) wakes every `within` however idle (~12 times here), which is why the deciders do not
    use it."""
    _, wakes = _run(lambda stream: take_batches(stream, 3, WITHIN), [[1], [], []])
    assert wakes <= 4
    _, spins = _run(lambda stream: stream.take_events(3, within=WITHIN), [[1], [], []])
    assert spins >= 8
