"""The earnings decider: credits apply once, payouts reserve before they pay and never overdraw."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from spaktok.commands.base import Command, Rejection
from spaktok.commands.earnings import CompletePayout, CreditEarnings, FailPayout, RequestPayout
from spaktok.events.base import Event
from spaktok.events.earnings import EarningsCredited, PayoutCompleted, PayoutFailed, PayoutRequested


@dataclass(frozen=True, slots=True)
class EarningsState:
    version: int = 0
    balance: int = 0  # available for payouts
    reserved: int = 0  # requested payouts not yet settled
    total_earned: int = 0
    paid_out: int = 0
    # per stream, the sequence of the last stream event credited: a stream's credits arrive in its
    # own order, so anything at or below it is a duplicate
    credited_through: dict[str, int] = field(default_factory=dict)
    payouts: dict[str, list[Any]] = field(default_factory=dict)  # id -> [status, coins]

    def stats(self) -> dict[str, Any]:
        return {"balance": self.balance, "reserved": self.reserved}

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EarningsState:
        return cls(**data)


def thaw(state: EarningsState) -> EarningsState:
    return replace(state, credited_through=dict(state.credited_through), payouts=dict(state.payouts))


def decide(command: Command, state: EarningsState) -> list[Event]:
    match command:
        case CreditEarnings():
            return _credit(command, state)
        case RequestPayout():
            if command.payout_id in state.payouts:
                return []
            if Decimal(command.amount_usd) < Decimal(command.minimum_usd):
                raise Rejection("payout-below-minimum", f"the minimum payout is ${command.minimum_usd}")
            if command.coins > state.balance:
                raise Rejection(
                    "insufficient-earnings",
                    f"${command.amount_usd} is {command.coins} coins; {state.balance} are available",
                )
            return [
                PayoutRequested(
                    payout_id=command.payout_id,
                    method=command.method,
                    coins=command.coins,
                    amount_usd=command.amount_usd,
                    balance=state.balance - command.coins,
                    reserved=state.reserved + command.coins,
                    requested_at=command.issued_at,
                )
            ]
        case CompletePayout() | FailPayout():
            return _settle(command, state)
    raise Rejection("unsupported-command", f"the earnings aggregate does not handle {command.type}")


def _credit(command: CreditEarnings, state: EarningsState) -> list[Event]:
    """Each credit once: at or below its stream's last credited sequence it is a redelivery."""
    through: dict[str, int] = {}
    balance = state.balance
    events: list[Event] = []
    for credit in command.credits:
        last = through.get(credit.stream_id, state.credited_through.get(credit.stream_id, 0))
        if credit.stream_sequence <= last:
            continue
        through[credit.stream_id] = credit.stream_sequence
        balance += credit.coins
        events.append(
            EarningsCredited(
                source=credit.source,
                stream_id=credit.stream_id,
                stream_sequence=credit.stream_sequence,
                gift_tx=credit.gift_tx,
                sender_id=credit.sender_id,
                coins=credit.coins,
                balance=balance,
                credited_at=command.issued_at,
            )
        )
    return events


def _settle(command: CompletePayout | FailPayout, state: EarningsState) -> list[Event]:
    payout = state.payouts.get(command.payout_id)
    if payout is None:
        raise Rejection("payout-not-found", f"no payout {command.payout_id}")
    status, coins = payout
    wanted = "completed" if isinstance(command, CompletePayout) else "failed"
    if status == wanted:
        return []  # the provider called back twice
    if status != "pending":
        raise Rejection("payout-not-pending", f"payout {command.payout_id} is {status} already")
    if isinstance(command, CompletePayout):
        return [
            PayoutCompleted(
                payout_id=command.payout_id,
                coins=coins,
                provider_ref=command.provider_ref,
                reserved=state.reserved - coins,
                completed_at=command.issued_at,
            )
        ]
    return [
        PayoutFailed(
            payout_id=command.payout_id,
            coins=coins,
            reason=command.reason,
            balance=state.balance + coins,
            reserved=state.reserved - coins,
            failed_at=command.issued_at,
        )
    ]


def evolve(state: EarningsState, event: Event) -> EarningsState:
    version = state.version + 1
    match event:
        case EarningsCredited():
            state.credited_through[event.stream_id] = event.stream_sequence
            return replace(
                state, version=version, balance=event.balance, total_earned=state.total_earned + event.coins
            )
        case PayoutRequested():
            state.payouts[event.payout_id] = ["pending", event.coins]
            return replace(state, version=version, balance=event.balance, reserved=event.reserved)
        case PayoutCompleted():
            state.payouts[event.payout_id] = ["completed", event.coins]
            return replace(
                state, version=version, reserved=event.reserved, paid_out=state.paid_out + event.coins
            )
        case PayoutFailed():
            state.payouts[event.payout_id] = ["failed", event.coins]
            return replace(state, version=version, balance=event.balance, reserved=event.reserved)
    return replace(state, version=version)
