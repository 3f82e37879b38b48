"""The pure core (processors/core.py) writes exactly what the pydantic models wrote before: the same
envelope bytes (consumers, replays and the ledger audit read them) and the same outcome JSON, with
each payload serialised once."""

from __future__ import annotations

import orjson
import pytest
from test_money_deciders import deliver, received
from test_stream_decider import comment, commented, joined

from spaktok.commands.base import Rejection
from spaktok.commands.outcome import Outcome
from spaktok.events import envelope
from spaktok.events.base import Event
from spaktok.processors import core

EVENTS: list[Event] = [commented("ann", 3.25, 7), joined("bob", 1), received(deliver(4, count=3))]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
@pytest.mark.parametrize("index,sequence", [(0, 5), (2, 9), ("notice-1", 0), (0, 0)])
def test_a_sealed_event_is_byte_for_byte_the_envelope(event: Event, index: int | str, sequence: int) -> None:
    command = comment("ann", 3.25)
    old = envelope.seal(
        event,
        aggregate_id=command.aggregate_id,
        sequence=sequence,
        command_id=command.command_id,
        index=index if sequence or isinstance(index, str) else "rejected",
        correlation_id=command.correlation,
        actor_id=command.actor_id,
        occurred_at=command.issued_at,
    )
    sealed = core.seal(command, event, index, sequence)
    assert sealed.to_bytes() == old.to_bytes()
    assert sealed.payload == old.payload and sealed.event_id == old.event_id


@pytest.mark.parametrize("rejection", [None, Rejection("slow-mode", "wait 3 s")])
def test_an_outcome_is_what_the_outcome_model_wrote(rejection: Rejection | None) -> None:
    command = comment("ann", 3.25)
    sealed = [core.seal(command, event, i, i + 1) for i, event in enumerate(EVENTS)]
    stats = {"status": "live", "viewerCount": 3}
    model = Outcome(
        command_id=command.command_id,
        correlation_id=command.correlation,
        command_type=command.type,
        aggregate_id=command.aggregate_id,
        status="rejected" if rejection else "accepted",
        actor_id=command.actor_id,
        reason=rejection.reason if rejection else None,
        detail=rejection.detail if rejection else None,
        events=[{"type": s.type, "sequence": s.sequence, "payload": s.payload} for s in sealed],
        stats=stats,
    )
    assert orjson.dumps(core.outcome_of(command, sealed, stats, rejection)) == model.to_bytes()
