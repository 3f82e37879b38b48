"""Given/when/then for pure deciders: `AGGREGATE.given(*events).when(command).then(*events)`.

`given` folds past events with the aggregate's `evolve` from its initial state, `when` holds the
command, and the `then…` methods run `decide` once and check what it answered. No I/O, no clock:
tests speak in offsets from `T0`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import pytest

from spaktok.commands.base import Command, Rejection
from spaktok.events.base import Event

S = TypeVar("S")

T0 = datetime(2025, 3, 1, 20, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """The moment `seconds` after T0."""
    return T0 + timedelta(seconds=seconds)


def fold(evolve: Callable[[S, Event], S], state: S, events: Iterable[Event]) -> S:
    """Apply `events` one by one, as the processor does after a decision."""
    for event in events:
        state = evolve(state, event)
    return state


@dataclass(frozen=True)
class Aggregate(Generic[S]):
    """A decider: its initial state (a factory: evolve may change a state's collections in place),
    `decide(command, state)` and `evolve(state, event)`."""

    initial: Callable[[], S]
    decide: Callable[[Command, S], list[Event]]
    evolve: Callable[[S, Event], S]
    thaw: Callable[[S], S] = staticmethod(lambda state: state)  # a copy evolve may change

    def given(self, *events: Event) -> Given[S]:
        return Given(self, fold(self.evolve, self.initial(), events))


@dataclass(frozen=True)
class Given(Generic[S]):
    aggregate: Aggregate[S]
    state: S

    def when(self, command: Command) -> When[S]:
        return When(self.aggregate, self.state, command)


@dataclass(frozen=True)
class When(Generic[S]):
    aggregate: Aggregate[S]
    state: S
    command: Command

    def events(self) -> list[Event]:
        """The decided events; a refusal propagates as `Rejection`."""
        return self.aggregate.decide(self.command, self.state)

    def then(self, *expected: Event) -> None:
        """Exactly these events, in this order (none at all: the command changes nothing)."""
        assert self.events() == list(expected)

    def then_rejected(self, reason: str) -> Rejection:
        """Refused with this problem slug; returns the rejection for checks on its detail."""
        with pytest.raises(Rejection) as refused:
            self.events()
        assert refused.value.reason == reason
        return refused.value

    def then_state(self) -> S:
        """The state once the decided events are folded in."""
        return fold(self.aggregate.evolve, self.aggregate.thaw(self.state), self.events())
