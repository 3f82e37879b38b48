"""Runs one aggregate's decider inside a Faust agent: decode, decide, publish, await delivery, store.

Commands are handled in batches; the rules below hold per batch. Exactly-once effects on an
at-least-once log (DESIGN §3), by two orderings and one atomic write:

- The new state is stored only after the broker acknowledged the batch's events, forwards and
  outcomes. Stored state therefore never runs ahead of the log: a crash before the store leaves the
  old state, the command is redelivered (its offset was not committed) and decided again from that
  same state, which yields the same events with the same ids and sequences (deciders are pure and
  take time from the command), so consumers drop them as duplicates.
- The aggregate's state and its memory of processed command ids are named by one main record,
  written last (`processors.storage`): they cannot disagree after a crash. (Two tables could, and
  did: state restored with a command applied but its id forgotten made the retry a silent no-op.)
- A command id found in that memory is a duplicate (a client retry, a redelivery): nothing is
  decided; its follow-up commands and outcome are sent again so a waiting caller still gets its answer.

This module is the shell: the decision itself is `processors.core.execute` (pure), what travels is
`processors.bundling`, how an aggregate is stored is `processors.storage` and its memory of
commands `processors.memory`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from spaktok.commands.base import Command, Rejection, command_from, decode_command
from spaktok.events.base import Event
from spaktok.events.envelope import derive_id
from spaktok.infra import bundles
from spaktok.processors import bundling
from spaktok.processors.bundling import Incoming, Outgoing
from spaktok.processors.core import DecideFailed, EvolveFailed, Sealed, duplicate_outcome, execute
from spaktok.processors.deadletter import deadletter_headers, text_key
from spaktok.processors.storage import AggregateStore, Held, TableLike, part_key

__all__ = ["AggregateRunner", "AggregateSpec", "Forward", "Incoming", "Outgoing", "TableLike", "part_key"]

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Hands one record to the producer; the returned awaitable resolves when the broker acked it."""

    async def __call__(
        self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]], partition: int | None
    ) -> Awaitable[Any]:
        """`partition` None: the key's partition (murmur2)."""
        ...


@dataclass(frozen=True)
class Forward:
    """A follow-up command for another aggregate, sent after this command's events."""

    topic: str
    command: Command


@dataclass
class AggregateSpec:
    aggregate_type: str
    events_topic: str
    initial: Callable[[], Any]
    load: Callable[[dict[str, Any]], Any]
    decide: Callable[[Command, Any], list[Event]]
    evolve: Callable[[Any, Event], Any]
    rejected: Callable[[Command, Rejection], Event]
    follow_ups: Callable[[Command, list[Sealed], Any], list[Forward]]
    is_final: Callable[[Command, list[Sealed]], bool]
    # a copy of a state that `evolve` may change in place; identity for aggregates whose evolve
    # builds new values
    thaw: Callable[[Any], Any] = lambda state: state
    # which aggregates the worker's timers look after (e.g. live streams, for the viewer sweep)
    is_active: Callable[[Any], bool] = lambda state: False
    # notices: decided facts that do not change the aggregate (e.g. "these followers were
    # notified"); sealed with sequence 0 like refusals and published on `notice_topic`
    is_notice: Callable[[Event], bool] = lambda event: False
    notice_topic: str | None = None
    # an edge batch's answer to each of its members (e.g. each viewer of a batch of joins), by member,
    # so each waiting caller finds its own however long the batch; None: the command has no members
    answers: Callable[[Command, list[Sealed]], dict[str, Any] | None] = lambda command, events: None
    # big states are stored in parts (see processors.storage): `split` gives the main
    # JSON-able dict and named parts, `join` rebuilds the state from both
    split: Callable[[Any], tuple[dict[str, Any], dict[str, Any]]] | None = None
    join: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None
    # follow-up commands of these types that a batch sends to one key travel as one command:
    # `merge` turns their JSON forms (in order) into one (fewer messages for the next aggregate)
    merge_types: frozenset[str] = frozenset()
    merge: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    # a refusal is remembered like a decision, so the same command again (a client's retry with its
    # Idempotency-Key, a redelivered or duplicated record) gets the first answer instead of being
    # decided anew against a state that may have changed: a gift refused for `insufficient-coins`
    # must not be debited after a top-up (found by bench/chaos.py and the reference model)
    remember_refusals: bool = False


class AggregateRunner:
    """Decides batches of commands for the aggregates of the partitions it owns.

    A batch is decided in order, in memory; then everything it produced is sent and acknowledged;
    then each aggregate it changed is stored once. The per-message costs (a table write and its
    changelog record, an ack round trip) are paid per batch instead of per command.
    """

    def __init__(
        self,
        spec: AggregateSpec,
        *,
        states: TableLike,
        send: Sender,
        outcomes_topic: str,
        deadletter_topic: str,
        memory: int,
        partitions: Mapping[str, int] | None = None,
    ) -> None:
        """`partitions`: how many partitions each command topic has. Known, the runner bundles a
        batch's follow-up commands per partition and checks that every bundled command belongs on
        the partition it came in; unknown (None), each follow-up travels alone."""
        self.spec = spec
        self.states = states
        self.send = send
        self.outcomes_topic = outcomes_topic
        self.deadletter_topic = deadletter_topic
        self.partitions = partitions
        self.store = AggregateStore(spec, states, memory)

    async def handle_batch(
        self, records: list[Incoming], still_owned: Callable[[], bool] | None = None
    ) -> bool:
        """Decide every record, publish the results, then store the changed aggregates.

        `still_owned` fences a worker that lost the batch's partitions while it decided (its group
        session expired while a long batch held its event loop, and a rebalance gave them to
        another worker, which recovered the table and decides the same commands): asked before the
        results are published and again before they are stored, it abandons the batch when it
        answers False, and handle_batch returns False. Two writers on one changelog partition
        corrupt it: one's deletions of part versions it replaced remove parts the other's main
        record names (seen with a 1 M-viewer stream: both workers then crashed on "part … is
        missing from the table"). The check narrows that window to the publish itself; only
        Kafka transactions would close it."""
        records = bundling.unbundled(records)
        poisoned: dict[int, BaseException] = {}
        started = time.perf_counter()
        while True:
            try:
                held, out = self._decide_batch(records, poisoned)
                break
            except _Poisoned as exc:
                # evolve or a follow-up failed half way through a command: the held states may be
                # half changed, so the batch is decided again from the stored ones without it
                log.error(
                    "command at offset %s failed mid-way; batch decided again without it",
                    records[exc.index].offset,
                    exc_info=exc.__cause__,
                )
                poisoned[exc.index] = exc.__cause__ or exc
        decided = time.perf_counter()
        if still_owned is not None and not still_owned():
            log.warning(
                "the partitions of a batch of %d records moved to another worker; abandoned", len(records)
            )
            return False
        await self._publish(out)
        if still_owned is not None and not still_owned():
            log.warning("the partitions of a batch moved while it was published; not stored")
            return False
        published = time.perf_counter()
        for aggregate_id, aggregate in held.items():
            if aggregate.changed:
                self.store.store(aggregate_id, aggregate)
        _tell_if_long(len(records), held, decided - started, time.perf_counter() - published)
        return True

    def _decide_batch(
        self, records: list[Incoming], poisoned: dict[int, BaseException]
    ) -> tuple[dict[str, Held], list[Outgoing]]:
        held: dict[str, Held] = {}
        out: list[Outgoing] = []
        for index, record in enumerate(records):
            if index in poisoned:
                out.append(self._deadletter(record, poisoned[index], "decide"))
                continue
            try:
                command = self._decoded(record)
                aggregate = self._hold(command.aggregate_id, record.partition, held)
            except Exception as exc:  # noqa: BLE001 - bad input must never stop the worker
                out.append(self._deadletter(record, exc, _stage_of(exc)))
                continue
            try:
                self._decide(command, aggregate, out)
            except DecideFailed as exc:
                log.error("command %s failed; dead-lettered", command.command_id, exc_info=exc.__cause__)
                out.append(self._deadletter(record, exc.__cause__ or exc, "decide"))
            except EvolveFailed as exc:
                raise _Poisoned(index) from exc.__cause__
        if self.spec.merge is not None:
            out = bundling.merged(out, self.spec.merge_types, self.spec.merge)
        return held, bundling.bundled(out, self.partitions)

    def _decoded(self, record: Incoming) -> Command:
        command = decode_command(record.value) if record.parsed is None else command_from(record.parsed)
        if command.aggregate_type != self.spec.aggregate_type:
            raise WrongTopic(f"{command.type} does not belong on {record.topic}")
        if record.member is not None and self.partitions is not None and record.topic in self.partitions:
            # a bundled command must belong on the bundle's partition: its key's, by murmur2
            home = bundles.partition_for(command.aggregate_id, self.partitions[record.topic])
            if home != record.partition:
                raise WrongPartition(
                    f"{command.aggregate_id} hashes to partition {home}; "
                    f"it came bundled on {record.partition}"
                )
        return command

    def _hold(self, aggregate_id: str, partition: int, held: dict[str, Held]) -> Held:
        aggregate = held.get(aggregate_id)
        if aggregate is None:
            aggregate = held[aggregate_id] = self.store.hold(aggregate_id, partition)
        if aggregate.partition != partition:
            # one aggregate, one writer: a command on another partition (a producer with another
            # partitioner) would be decided against a state whose changelog lives elsewhere, and a
            # recovery could then restore either version
            raise WrongPartition(
                f"{aggregate_id} lives on partition {aggregate.partition}; a command for it arrived on "
                f"{partition} (producers must hash keys with murmur2, like the Java client)"
            )
        return aggregate

    def _decide(self, command: Command, aggregate: Held, out: list[Outgoing]) -> None:
        """Decide one command against the held state; nothing is changed unless it all succeeds."""
        if command.command_id in aggregate.memory:
            self._answer_duplicate(command, aggregate, out)
            return
        decision = execute(self.spec, command, aggregate.state)
        for sealed in decision.events:
            out.append(_record(self.spec.events_topic, sealed))
        for sealed in decision.notices:
            assert self.spec.notice_topic is not None, "a spec with notices names their topic"
            out.append(_record(self.spec.notice_topic, sealed))
        forwards = [
            [f.topic, f.command.aggregate_id, f.command.model_dump(mode="json")] for f in decision.forwards
        ]
        self._answer(forwards, decision.outcome, out)
        if decision.remembered:
            aggregate.state = decision.state
            aggregate.memory.remember(command.command_id, {"forwards": forwards, "outcome": decision.outcome})
            aggregate.changed = True

    def _answer(self, forwards: list[list[Any]], outcome: dict[str, Any] | None, out: list[Outgoing]) -> None:
        for topic, key, command in forwards:
            out.append(bundling.forward(topic, key, command))
        if outcome is not None:
            out.append(bundling.outcome(self.outcomes_topic, outcome))

    def _answer_duplicate(self, command: Command, aggregate: Held, out: list[Outgoing]) -> None:
        """The events are in the log already; resend what a waiting caller or next aggregate needs."""
        remembered = aggregate.memory.answer(command.command_id)
        if remembered is not None:
            self._answer(remembered["forwards"], remembered["outcome"], out)
            return
        # remembered only by id (older than memory.ANSWERS_KEPT): say it was done already
        self._answer([], duplicate_outcome(command, aggregate.state.stats()), out)

    def active_ids(self) -> list[str]:
        return self.select(self.spec.is_active)

    def select(self, wanted: Callable[[Any], bool]) -> list[str]:
        """Aggregates held by this worker whose state `wanted` picks, for its timers.

        Values restored by a recovery are decoded once here and cached; after that a call only
        compares object identities.
        """
        return self.store.select(wanted)

    async def _publish(self, out: list[Outgoing]) -> None:
        """Send everything in order, then wait until the broker acknowledged all of it.

        A failed send is retried with the whole batch: records already acknowledged are sent again,
        which is harmless (same event ids and sequences; every consumer drops them by sequence),
        while giving up would let the state be stored ahead of the log, or lose the batch.
        """
        delay = 0.1
        while True:
            try:
                acks = [await self.send(o.topic, o.key, o.value, o.headers, o.partition) for o in out]
                await asyncio.gather(*acks)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("publishing %d records failed (%r); retrying in %.1f s", len(out), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _deadletter(self, record: Incoming, exc: BaseException, stage: str) -> Outgoing:
        headers = deadletter_headers(
            exc,
            stage=stage,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
        )
        value = record.value
        if record.member is not None:
            headers.append(("bundle-member", str(record.member).encode()))
            value = orjson.dumps(record.parsed)  # the member alone, not its whole bundle
        return Outgoing(self.deadletter_topic, text_key(record.key), value, headers, "deadletter")


def _record(topic: str, sealed: Sealed) -> Outgoing:
    return Outgoing(topic, sealed.aggregate_id, sealed.to_bytes(), sealed.headers())


class _Poisoned(Exception):
    """A command failed after it began changing held state."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _stage_of(exc: Exception) -> str:
    """`decode`: not a command at all (not JSON, not an object, no known type); `validate`: a known
    command that its model refuses (a field out of range, say negative coins) or that does not
    belong where it came (another aggregate's topic, another partition)."""
    return "validate" if isinstance(exc, ValidationError | WrongTopic | WrongPartition) else "decode"


class WrongPartition(ValueError):
    """A command arrived on another partition than the one its aggregate is written from."""


class WrongTopic(ValueError):
    """A command of another aggregate arrived on this aggregate's command topic."""


def refused_as(event_class: Callable[..., Event]) -> Callable[[Command, Rejection], Event]:
    """The usual `rejected` of a spec: the aggregate's CommandRejected event with the problem slug."""

    def rejected(command: Command, rejection: Rejection) -> Event:
        return event_class(command_type=command.type, reason=rejection.reason, detail=rejection.detail)

    return rejected


def forward_id(command: Command, purpose: str) -> str:
    """The id of a follow-up command: derived, so a replayed command forwards the same id."""
    return derive_id(command.command_id, purpose)


def follow_up(command: Command, purpose: str) -> dict[str, Any]:
    """The identity of a follow-up command: its derived id, and the cause's correlation and time."""
    return {
        "command_id": forward_id(command, purpose),
        "correlation_id": command.correlation,
        "issued_at": command.issued_at,
    }


LONG_BATCH_S = 0.5  # a batch holding the event loop this long is logged


def _tell_if_long(records: int, held: Mapping[str, Held], deciding_s: float, storing_s: float) -> None:
    """A warning for a batch whose synchronous work (loading and deciding, then storing) held the
    worker's event loop for `LONG_BATCH_S` or more: nothing else on the worker moved meanwhile, and
    past the group's session the worker loses its partitions. It names the aggregates (the first
    three), so an operator can tell a hot stream's moment from an overloaded worker."""
    if deciding_s + storing_s < LONG_BATCH_S:
        return
    names = ", ".join(sorted(held)[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
    log.warning(
        "a batch of %d records held the event loop %.2f s (loading and deciding %.2f s, storing %.2f s): %s",
        records,
        deciding_s + storing_s,
        deciding_s,
        storing_s,
        names,
    )
