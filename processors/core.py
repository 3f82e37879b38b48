"""The pure core of a decision: one command against one state gives a `Decision`; no I/O.

`execute` is what the worker does for a command once it has the aggregate's state and knows the
command is new: decide, fold the events into the state, seal them (ids, sequences, metadata), ask
the spec's saga policy for follow-up commands, and say what the waiting caller is told. The runner
around it (`processors.aggregate`) only decodes records, calls this, encodes each record once and
publishes and stores (DESIGN §3). Being pure, the core is tested without a broker or a table, and a
command decided again after a crash yields the same decision.

Sealed events are serialised once: the payload by pydantic (the boundary's format), the envelope
around it by orjson with the payload embedded as a fragment, and an outcome embeds the same
fragments (before: three pydantic dumps and an envelope re-validated per event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from spaktok.commands.base import Command, Rejection
from spaktok.events.base import Event
from spaktok.events.envelope import TYPE_HEADER, derive_id

if TYPE_CHECKING:
    from spaktok.processors.aggregate import AggregateSpec, Forward

OUTCOME_EVENTS_KEPT = 20  # the tail of a decision that an API caller sees


@dataclass(slots=True)
class Sealed:
    """A decided event with its envelope's metadata, serialised once, on demand.

    It reads like `events.envelope.Envelope` (type, sequence, event_id, aggregate_id, payload) so a
    saga policy may look at either; typed policies read `event`.
    """

    event: Event
    event_id: str
    aggregate_id: str
    sequence: int
    command_id: str
    correlation_id: str
    actor_id: str
    occurred_at: datetime
    _payload_json: bytes | None = field(default=None, repr=False)
    _payload: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def payload_json(self) -> bytes:
        if self._payload_json is None:
            self._payload_json = self.event.model_dump_json(exclude={"type"}).encode()
        return self._payload_json

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as JSON-able values (what a consumer of the record sees)."""
        if self._payload is None:
            self._payload = orjson.loads(self.payload_json)
        return self._payload

    def to_bytes(self) -> bytes:
        """The envelope's JSON, field for field what `Envelope.to_bytes` writes."""
        event_class = type(self.event)
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "type": self.event.type,
                "schema_version": event_class.schema_version,
                "aggregate_type": event_class.aggregate_type,
                "aggregate_id": self.aggregate_id,
                "sequence": self.sequence,
                "occurred_at": self.occurred_at,
                "causation_id": self.command_id,
                "correlation_id": self.correlation_id,
                "actor_id": self.actor_id,
                "payload": orjson.Fragment(self.payload_json),
            },
            option=orjson.OPT_UTC_Z,
        )

    def headers(self) -> list[tuple[str, bytes]]:
        return [(TYPE_HEADER, self.event.type.encode())]


def seal(command: Command, event: Event, index: int | str, sequence: int) -> Sealed:
    """An event decided for `command`; its id derives from the command and the event's index."""
    return Sealed(
        event=event,
        event_id=derive_id(command.command_id, index if sequence or isinstance(index, str) else "rejected"),
        aggregate_id=command.aggregate_id,
        sequence=sequence,
        command_id=command.command_id,
        correlation_id=command.correlation,
        actor_id=command.actor_id,
        occurred_at=command.issued_at,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything one command decided: the new state, the events applied to it (numbered), the
    notices (decided facts that change nothing), the follow-up commands, and the caller's answer
    (None: nobody waits for one). `remembered`: the command joins the aggregate's memory (it
    decided something, or it was refused by an aggregate that remembers refusals)."""

    state: Any
    events: list[Sealed]
    notices: list[Sealed]
    forwards: list[Forward]
    outcome: dict[str, Any] | None
    remembered: bool


class DecideFailed(Exception):
    """The decider raised something other than a Rejection: nothing was changed."""


class EvolveFailed(Exception):
    """Folding an event or asking the saga policy failed: the state may be half changed."""


def execute(spec: AggregateSpec, command: Command, state: Any) -> Decision:
    """Decide `command` against `state` (thawed: `evolve` may change its collections in place)."""
    try:
        decided = spec.decide(command, state)
        rejection: Rejection | None = None
    except Rejection as exc:
        decided, rejection = [], exc
    except Exception as exc:
        raise DecideFailed from exc  # deciders are pure: nothing was changed yet
    try:
        return _applied(spec, command, state, decided, rejection)
    except Exception as exc:
        raise EvolveFailed from exc


def _applied(
    spec: AggregateSpec, command: Command, state: Any, decided: list[Event], rejection: Rejection | None
) -> Decision:
    events: list[Sealed] = []
    notices: list[Sealed] = []
    for index, event in enumerate(decided):
        if spec.is_notice(event):
            notices.append(seal(command, event, f"notice-{index}", 0))
            continue
        if event.refusal:  # some members of an edge batch were refused: no sequence, no change
            events.append(seal(command, event, f"refusal-{index}", 0))
            continue
        state = spec.evolve(state, event)
        events.append(seal(command, event, index, state.version))
    if rejection is not None:
        # a refusal is a fact about the command, not the aggregate: sequence 0, state unchanged
        events.append(seal(command, spec.rejected(command, rejection), 0, 0))
    forwards = spec.follow_ups(command, events, state) if rejection is None else []
    outcome = None
    if rejection is not None or spec.is_final(command, events):
        outcome = outcome_of(command, events, state.stats(), rejection, spec.answers(command, events))
    remembered = bool(decided) or (rejection is not None and spec.remember_refusals)
    return Decision(state, events, notices, forwards, outcome, remembered)


def outcome_of(
    command: Command,
    events: list[Sealed],
    stats: dict[str, Any],
    rejection: Rejection | None,
    answers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The answer as `commands.outcome.Outcome` serialises it; payloads embedded, not re-dumped.
    `answers`: an edge batch's answer to each member, by member (see `AggregateSpec.answers`)."""
    return {
        "command_id": command.command_id,
        "correlation_id": command.correlation,
        "command_type": command.type,
        "aggregate_id": command.aggregate_id,
        "status": "rejected" if rejection else ("accepted" if events else "noop"),
        "actor_id": command.actor_id,
        "reason": rejection.reason if rejection else None,
        "detail": rejection.detail if rejection else None,
        "events": [
            {"type": e.type, "sequence": e.sequence, "payload": orjson.Fragment(e.payload_json)}
            for e in events[-OUTCOME_EVENTS_KEPT:]
        ],
        "stats": stats,
        "answers": answers or {},
    }


def duplicate_outcome(command: Command, stats: dict[str, Any]) -> dict[str, Any]:
    """The answer to a command remembered only by its id (its full answer is no longer kept)."""
    return {
        "command_id": command.command_id,
        "correlation_id": command.correlation,
        "command_type": command.type,
        "aggregate_id": command.aggregate_id,
        "status": "noop",
        "actor_id": command.actor_id,
        "reason": None,
        "detail": "duplicate of a command processed earlier",
        "events": [],
        "stats": stats,
        "answers": {},
    }
