"""Runs one aggregate's decider inside a Faust agent: load state, decide, emit, evolve, store.

Exactly-once effects on an at-least-once log (DESIGN §3): event ids derive from the command id, and
every processed command's outcome (its events and follow-up commands) is remembered per aggregate.
A redelivered command re-emits the remembered records verbatim instead of deciding again, so a crash
between producing and storing loses nothing; consumers drop the duplicates by aggregate sequence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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


class State(Protocol):
    version: int

    def stats(self) -> dict[str, Any]: ...
    def to_dict(self) -> dict[str, Any]: ...


class Sender(Protocol):
    async def __call__(self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]) -> None: ...


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
        outcomes: TableLike,
        send: Sender,
        outcomes_topic: str,
        deadletter_topic: str,
        memory: int,
    ) -> None:
        self.spec = spec
        self.states = states
        self.outcomes = outcomes
        self.send = send
        self.outcomes_topic = outcomes_topic
        self.deadletter_topic = deadletter_topic
        self.memory = memory
        self.commands_handled = 0
        self.actions_handled = 0

    async def handle_record(self, key: bytes | None, raw: bytes, *, topic: str, partition: int, offset: int) -> None:
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
        remembered = self.outcomes.get(command.command_id)
        if remembered is not None:
            await self._publish(orjson.loads(remembered))
            return
        aggregate_id = command.aggregate_id
        raw_state = self.states.get(aggregate_id)
        state = self.spec.load(orjson.loads(raw_state)) if raw_state is not None else self.spec.initial()
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
        record: dict[str, Any] = {
            "events": [env.model_dump(mode="json") for env in envelopes],
            "forwards": [[f.topic, f.command.aggregate_id, f.command.model_dump(mode="json")] for f in forwards],
            "outcome": None,
        }
        if rejection is not None or self.spec.is_final(command, envelopes):
            record["outcome"] = self._outcome(command, envelopes, state, rejection).model_dump(mode="json")
        await self._publish(record)
        self.commands_handled += 1
        if state.version > 0 and decided:
            self._store(command.command_id, aggregate_id, state, record)

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

    def _store(self, command_id: str, aggregate_id: str, state: Any, record: dict[str, Any]) -> None:
        recent_key = f"recent:{aggregate_id}"
        recent = orjson.loads(self.outcomes.get(recent_key) or b"[]")
        recent.append(command_id)
        while len(recent) > self.memory:
            del self.outcomes[recent.pop(0)]
        self.outcomes[command_id] = orjson.dumps(record)
        self.outcomes[recent_key] = orjson.dumps(recent)
        self.states[aggregate_id] = orjson.dumps(state.to_dict())

    async def _publish(self, record: dict[str, Any]) -> None:
        for env in record["events"]:
            await self.send(
                self.spec.events_topic, env["aggregate_id"], orjson.dumps(env), [(TYPE_HEADER, env["type"].encode())]
            )
        for topic, key, command in record["forwards"]:
            await self.send(topic, key, orjson.dumps(command), [("command-type", command["type"].encode())])
        if record["outcome"] is not None:
            outcome = record["outcome"]
            await self.send(self.outcomes_topic, outcome["correlation_id"], orjson.dumps(outcome), [])

    async def _deadletter(
        self, key: bytes | None, raw: bytes, exc: BaseException, stage: str, topic: str, partition: int, offset: int
    ) -> None:
        headers = deadletter_headers(exc, stage=stage, topic=topic, partition=partition, offset=offset)
        await self.send(self.deadletter_topic, (key or b"").decode("utf-8", "replace"), raw, headers)


def forward_id(command: Command, purpose: str) -> str:
    """The id of a follow-up command: derived, so a replayed command forwards the same id."""
    return derive_id(command.command_id, purpose)
