"""Commands on a broadcaster's earnings: gift shares in, payouts out."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from spaktok.commands.base import Command, register_command
from spaktok.events.earnings import PayoutMethod


class EarningsCommand(Command):
    aggregate_type: ClassVar[str] = "earnings"
    broadcaster_id: str = Field(min_length=1, max_length=128)

    @property
    def aggregate_id(self) -> str:
        return self.broadcaster_id


PK_BONUS_PREFIX = "pk:"  # a bonus credit names its battle where a gift credit names its stream


def pk_bonus_line(battle_id: str) -> str:
    """The `stream_id` of a PK battle's bonus credit: a sequence line of its own, credited once."""
    return f"{PK_BONUS_PREFIX}{battle_id}"


class Credit(BaseModel):
    """One share to credit: a delivered gift's (or a PK bonus), named by the crediting stream event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["gift", "pk_bonus"] = "gift"
    stream_id: str
    stream_sequence: int = Field(gt=0)
    gift_tx: str = ""
    sender_id: str = ""
    coins: int = Field(ge=0)


@register_command
class CreditEarnings(EarningsCommand):
    """Internal: shares to credit, in the order their streams decided them. A stream batch sends one
    such command per broadcaster (processors/streams.py merges them)."""

    type: Literal["earnings.CreditEarnings"] = "earnings.CreditEarnings"
    credits: list[Credit] = Field(min_length=1)


@register_command
class RequestPayout(EarningsCommand):
    type: Literal["earnings.RequestPayout"] = "earnings.RequestPayout"
    payout_id: str = Field(min_length=1, max_length=64)
    method: PayoutMethod
    amount_usd: str  # two decimals, validated at the edge
    coins: int = Field(gt=0)  # amount_usd at the coin value
    minimum_usd: str  # settings, carried so the decision does not read configuration


@register_command
class CompletePayout(EarningsCommand):
    type: Literal["earnings.CompletePayout"] = "earnings.CompletePayout"
    payout_id: str = Field(min_length=1, max_length=64)
    provider_ref: str = Field(default="", max_length=128)


@register_command
class FailPayout(EarningsCommand):
    type: Literal["earnings.FailPayout"] = "earnings.FailPayout"
    payout_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)
