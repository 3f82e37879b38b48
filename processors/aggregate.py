"""Runs one aggregate's decider inside a Faust agent: load, decide, emit, await delivery, store.

Exactly-once effects on an at-least-once log (DESIGN §3), by two orderings and one atomic write:

- The new state is stored only after the broker acknowledged the command's events, forwards and
  outcome. Stored state therefore never runs ahead of the log: a crash before the store leaves the
  old state, the command is redelivered (its offset was not committed) and decided again from that
  same state, which yields the same events with the same ids and sequences (deciders are pure and
  take time from the command), so consumers drop them as duplicates.
- The aggregate's state and its memory of processed command ids are one table value, written in one
  changelog record: they cannot disagree after a crash. (Two tables could, and did: state restored
  with a command applied but its id forgotten made the retry a silent no-op.)
- A command id found in that memory is a duplicate (a client retry, a redelivery): nothing is
  decided; its follow-up commands and outcome are sent again so a waiting caller still gets its answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from spaktok.commands.base import Command, Rejection, decode_command
from spaktok.commands.outcome import Outcome
from spaktok.events.base import Event
from spaktok.events.envelope import TYPE_HEADER, Envelope, derive_id, seal
from spaktok.processors.deadletter import deadletter_headers

log = logging.getLogger(__name__)

OUTCOME_EVENTS_KEPT = 20  # the tail of a decision that an API caller sees
ANSWERS_KEPT = 32  # newest processed commands per aggregate whose full answer is kept for retries


class State(Protocol):
    version: int

    def stats(self) -> dict[str, Any]: ...
    def to_dict(self) -> dict[str, Any]: ...


class Sender(Protocol):
    """Hands one record to the producer; the returned awaitable resolves when the broker acked it."""

    async def __call__(
        self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Awaitable[Any]: ...


class TableLike(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def __setitem__(self, key: str, value: Any) -> None: ...
    def __delitem__(self, key: str) -> None: ...


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
    follow_ups: Callable[[Command, list[Envelope], Any], list[Forward]]
    is_final: Callable[[Command, list[Envelope]], bool]


class AggregateRunner:
    """Decides one command at a time for the aggregates of the partitions it owns."""

    def __init__(
        self,
        spec: AggregateSpec,
        *,
        states: TableLike,
        send: Sender,
        outcomes_topic: str,
        deadletter_topic: str,
        memory: int,
    ) -> None:
        self.spec = spec
        self.states = states
        self.send = send
        self.outcomes_topic = outcomes_topic
        self.deadletter_topic = deadletter_topic
        self.memory = memory
        self.commands_handled = 0
        self.actions_handled = 0

    async def handle_record(
        self, key: bytes | None, raw: bytes, *, topic: str, partition: int, offset: int
    ) -> None:
        """Decode and handle one record; anything undecodable or failing goes to the dead-letter topic."""
        try:
            command = decode_command(raw)
            if command.aggregate_type != self.spec.aggregate_type:
                raise ValueError(f"{command.type} does not belong on {topic}")
        except Exception as exc:  # noqa: BLE001 - bad input must never stop the worker
            await self._deadletter(key, raw, exc, "decode", topic, partition, offset)
            return
        try:
            await self.handle(command)
        except Exception as exc:  # noqa: BLE001 - a bug in one command must not stop the rest
            log.exception("command %s failed; dead-lettered", command.command_id)
            await self._deadletter(key, raw, exc, "decide", topic, partition, offset)

    async def handle(self, command: Command) -> None:
        aggregate_id = command.aggregate_id
        stored = self.states.get(aggregate_id)
        if stored is None:
            state, memory = self.spec.initial(), {}
        else:
            data = orjson.loads(stored)
            state, memory = self.spec.load(data["state"]), dict(data["memory"])
        if command.command_id in memory:
            await self._answer_duplicate(command, state, memory[command.command_id])
            return
        try:
            decided = self.spec.decide(command, state)
            rejection: Rejection | None = None
        except Rejection as exc:
            decided, rejection = [], exc

        envelopes: list[Envelope] = []
        for index, event in enumerate(decided):
            state = self.spec.evolve(state, event)
            envelopes.append(self._seal(command, event, index, state.version))
        if rejection is not None:
            # a refusal is a fact about the command, not the aggregate: sequence 0, state unchanged
            envelopes.append(self._seal(command, self.spec.rejected(command, rejection), 0, 0))

        forwards = self.spec.follow_ups(command, envelopes, state) if rejection is None else []
        forward_records = [
            [f.topic, f.command.aggregate_id, f.command.model_dump(mode="json")] for f in forwards
        ]
        outcome = None
        if rejection is not None or self.spec.is_final(command, envelopes):
            outcome = self._outcome(command, envelopes, state, rejection).model_dump(mode="json")
        await self._publish([env.model_dump(mode="json") for env in envelopes], forward_records, outcome)
        self.commands_handled += 1
        if decided:
            memory[command.command_id] = {"forwards": forward_records, "outcome": outcome}
            self._store(aggregate_id, state, memory)

    async def _answer_duplicate(
        self, command: Command, state: Any, remembered: dict[str, Any] | None
    ) -> None:
        """The events are in the log already; resend what a waiting caller or next aggregate needs."""
        if remembered is not None:
            await self._publish([], remembered["forwards"], remembered["outcome"])
            return
        # remembered only by id (older than ANSWERS_KEPT): say it was done already
        duplicate = Outcome(
            command_id=command.command_id,
            correlation_id=command.correlation,
            command_type=command.type,
            aggregate_id=command.aggregate_id,
            status="noop",
            detail="duplicate of a command processed earlier",
            stats=state.stats(),
        )
        await self._publish([], [], duplicate.model_dump(mode="json"))

    def _seal(self, command: Command, event: Event, index: int, sequence: int) -> Envelope:
        return seal(
            event,
            aggregate_id=command.aggregate_id,
            sequence=sequence,
            command_id=command.command_id,
            index=index if sequence else "rejected",
            correlation_id=command.correlation,
            actor_id=command.actor_id,
            occurred_at=command.issued_at,
        )

    def _outcome(
        self, command: Command, envelopes: list[Envelope], state: Any, rejection: Rejection | None
    ) -> Outcome:
        status = "rejected" if rejection else ("accepted" if envelopes else "noop")
        return Outcome(
            command_id=command.command_id,
            correlation_id=command.correlation,
            command_type=command.type,
            aggregate_id=command.aggregate_id,
            status=status,
            reason=rejection.reason if rejection else None,
            detail=rejection.detail if rejection else None,
            events=[
                {"type": e.type, "sequence": e.sequence, "payload": e.payload}
                for e in envelopes[-OUTCOME_EVENTS_KEPT:]
            ],
            stats=state.stats(),
        )

    def _store(self, aggregate_id: str, state: Any, memory: dict[str, Any]) -> None:
        """State and processed-command memory in one value: one changelog record, atomic."""
        ids = list(memory)  # insertion order: oldest first
        for old in ids[: max(0, len(ids) - self.memory)]:
            del memory[old]
        for old in ids[max(0, len(ids) - self.memory) : max(0, len(ids) - ANSWERS_KEPT)]:
            memory[old] = None
        self.states[aggregate_id] = orjson.dumps({"state": state.to_dict(), "memory": list(memory.items())})

    async def _publish(
        self, events: list[dict[str, Any]], forwards: list[list[Any]], outcome: dict[str, Any] | None
    ) -> None:
        """Send everything, then wait until the broker acknowledged all of it."""
        acks = [
            await self.send(
                self.spec.events_topic,
                env["aggregate_id"],
                orjson.dumps(env),
                [(TYPE_HEADER, env["type"].encode())],
            )
            for env in events
        ]
        for topic, key, command in forwards:
            acks.append(
                await self.send(
                    topic, key, orjson.dumps(command), [("command-type", command["type"].encode())]
                )
            )
        if outcome is not None:
            acks.append(
                await self.send(self.outcomes_topic, outcome["correlation_id"], orjson.dumps(outcome), [])
            )
        await asyncio.gather(*acks)

    async def _deadletter(
        self,
        key: bytes | None,
        raw: bytes,
        exc: BaseException,
        stage: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        headers = deadletter_headers(exc, stage=stage, topic=topic, partition=partition, offset=offset)
        await self.send(self.deadletter_topic, (key or b"").decode("utf-8", "replace"), raw, headers)


def forward_id(command: Command, purpose: str) -> str:
    """The id of a follow-up command: derived, so a replayed command forwards the same id."""
    return derive_id(command.command_id, purpose)
