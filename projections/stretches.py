"""How the Postgres projector cuts a batch into runs: each batch handler's events of a stretch of the
batch as one run, written one statement per table; every other event alone.

A busy batch interleaves kinds (a join, a like, a comment, a gift, the next join, ...), so runs of
consecutive events of one kind would be a few events long, and each costs its handler's statements.
Gathering a handler's events from across the batch is sound as long as every row still receives its
writes in the events' order. The handlers say which rows they share (`Footprint`: a row, and whether
the event writes it or only reads it); an event of handler B that touches a row that an earlier
event of handler A wrote (or read, when B writes it) means A's run must come before B's. A stretch
lasts while those "before" constraints have an order; an event that would make a cycle (B before A
and A before B) starts the next stretch, and so does an event without a batch handler. The runs of a
stretch are written in that order, and the stretch closes with one run of all its events through
`closing`, for the columns that several handlers set to their event's figure (the last must win).

Pure: no Postgres here (tests/unit/test_stretches.py).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from spaktok.events.envelope import Envelope

BatchHandler = Callable[[Connection, list[Envelope]], int]
# the rows an event's batch handler shares with other batch handlers: True where it writes the row
Footprint = Callable[[Envelope], dict[Hashable, bool]]
Run = tuple[BatchHandler | None, list[Envelope]]
_NOBODY: frozenset[BatchHandler] = frozenset()


def one_at_a_time(batch: BatchHandler) -> Callable[[Connection, Envelope], int]:
    """A batch handler as the handler of one event (outside a stretch, and for the replay)."""

    def handle(conn: Connection, env: Envelope) -> int:
        return batch(conn, [env])

    return handle


@dataclass
class _Stretch:
    """The stretch being gathered: each handler's run, all its events in the log's order, which
    handlers wrote or read each shared row, and which runs must come after which."""

    runs: dict[BatchHandler, list[Envelope]] = field(default_factory=dict)
    events: list[Envelope] = field(default_factory=list)
    writer: dict[Hashable, set[BatchHandler]] = field(default_factory=dict)  # a row -> who wrote it
    reader: dict[Hashable, set[BatchHandler]] = field(default_factory=dict)  # a row -> who read it
    after: dict[BatchHandler, set[BatchHandler]] = field(default_factory=dict)  # A -> runs after A

    def must_precede(self, batch: BatchHandler, rows: dict[Hashable, bool]) -> set[BatchHandler]:
        """The other handlers whose runs must come before `batch`'s for this event."""
        before: set[BatchHandler] = set()
        for row, writes in rows.items():
            before |= self.writer.get(row, _NOBODY)
            if writes:
                before |= self.reader.get(row, _NOBODY)
        before.discard(batch)
        return before

    def reaches(self, start: BatchHandler, goal: BatchHandler) -> bool:
        """Whether `start`'s run must already come before `goal`'s."""
        seen, todo = {start}, [start]
        while todo:
            for nxt in self.after.get(todo.pop(), ()):
                if nxt is goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    def add(
        self, batch: BatchHandler, env: Envelope, rows: dict[Hashable, bool], before: set[BatchHandler]
    ) -> None:
        """The event joins its handler's run, after the runs of `before`."""
        for handler in before:
            self.after.setdefault(handler, set()).add(batch)
        for row, writes in rows.items():
            (self.writer if writes else self.reader).setdefault(row, set()).add(batch)
        self.runs.setdefault(batch, []).append(env)
        self.events.append(env)

    def ordered(self) -> list[BatchHandler]:
        """The handlers in an order that keeps every "before", else in order of first appearance."""
        left = list(self.runs)
        done: list[BatchHandler] = []
        while left:
            ready = next(h for h in left if not any(h in self.after.get(o, ()) for o in left if o is not h))
            left.remove(ready)
            done.append(ready)
        return done


def plan(
    envs: list[Envelope],
    handlers: dict[str, BatchHandler],
    footprint: Footprint,
    closing: BatchHandler,
) -> list[Run]:
    """The batch's events as runs, in the order to write them (see the module's docstring)."""
    runs: list[Run] = []
    stretch = _Stretch()

    def close() -> None:
        nonlocal stretch
        runs.extend((handler, stretch.runs[handler]) for handler in stretch.ordered())
        if len(stretch.runs) > 1:
            runs.append((closing, stretch.events))
        stretch = _Stretch()

    for env in envs:
        batch = handlers.get(env.type)
        if batch is None:
            close()
            runs.append((None, [env]))
            continue
        rows = footprint(env)
        before = stretch.must_precede(batch, rows)
        if any(stretch.reaches(batch, handler) for handler in before):
            close()
            before = set()
        stretch.add(batch, env, rows, before)
    close()
    return runs
