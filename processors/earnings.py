"""Wiring of the earnings aggregate (a broadcaster's gift shares and payouts)."""

from __future__ import annotations

from spaktok.commands import earnings_decide
from spaktok.commands.base import Command
from spaktok.commands.earnings import CreditEarnings
from spaktok.commands.earnings_decide import EarningsState
from spaktok.events.earnings import EarningsCommandRejected
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, refused_as
from spaktok.processors.core import Sealed


def _no_follow_ups(command: Command, envelopes: list[Sealed], state: EarningsState) -> list[Forward]:
    return []


def _is_final(command: Command, envelopes: list[Sealed]) -> bool:
    return not isinstance(command, CreditEarnings)  # credits are the end of a gift's saga


EARNINGS = AggregateSpec(
    aggregate_type="earnings",
    events_topic=topics.EVENTS_EARNINGS.name,
    initial=EarningsState,
    load=EarningsState.from_dict,
    decide=earnings_decide.decide,
    evolve=earnings_decide.evolve,
    rejected=refused_as(EarningsCommandRejected),
    follow_ups=_no_follow_ups,
    is_final=_is_final,
    thaw=earnings_decide.thaw,
    remember_refusals=True,  # a refused payout request stays refused under its key
)
