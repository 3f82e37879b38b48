"""A broadcaster's earnings: gift shares credited, payouts reserved, completed or released."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from spaktok.events.base import Event, register_event

PayoutMethod = Literal["paypal", "bank"]


class EarningsEvent(Event):
    aggregate_type: ClassVar[str] = "earnings"


@register_event
class EarningsCredited(EarningsEvent):
    """The broadcaster's share of one delivered gift (or a bonus), in coins."""

    type: Literal["earnings.EarningsCredited"] = "earnings.EarningsCredited"
    source: Literal["gift", "pk_bonus"] = "gift"
    stream_id: str
    stream_sequence: int  # the crediting stream event's sequence: credits apply once, in order
    gift_tx: str = ""
    sender_id: str = ""
    coins: int
    balance: int  # available after this credit
    credited_at: datetime


@register_event
class PayoutRequested(EarningsEvent):
    """Coins move from the available balance into a reservation until the payout settles."""

    type: Literal["earnings.PayoutRequested"] = "earnings.PayoutRequested"
    payout_id: str
    method: PayoutMethod
    coins: int
    amount_usd: str  # two decimals
    balance: int
    reserved: int
    requested_at: datetime


@register_event
class PayoutCompleted(EarningsEvent):
    type: Literal["earnings.PayoutCompleted"] = "earnings.PayoutCompleted"
    payout_id: str
    coins: int
    provider_ref: str = ""
    reserved: int
    completed_at: datetime


@register_event
class PayoutFailed(EarningsEvent):
    """The reservation is released back to the available balance."""

    type: Literal["earnings.PayoutFailed"] = "earnings.PayoutFailed"
    payout_id: str
    coins: int
    reason: str
    balance: int
    reserved: int
    failed_at: datetime


@register_event
class EarningsCommandRejected(EarningsEvent):
    type: Literal["earnings.CommandRejected"] = "earnings.CommandRejected"
    command_type: str
    reason: str
    detail: str
