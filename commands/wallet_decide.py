"""The wallet decider: coins never go negative, each payment and each gift has one effect.

Duplicates are recognised by the wallet itself, not only by the worker's bounded memory of command
ids: payment refs are kept for good, gift sends for `IDEMPOTENCY_WINDOW_MS` (client retries with the
same Idempotency-Key), and refunds by the gift's sequence number.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from spaktok.commands.base import Command, Rejection
from spaktok.commands.stream_state import millis
from spaktok.commands.wallets import PurchaseCoins, RefundGift, SendGift
from spaktok.events.base import Event
from spaktok.events.wallets import CoinsPurchased, GiftDebited, GiftRefunded

IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000  # a retried gift send is recognised this long (Stripe: 24 h)


@dataclass(frozen=True, slots=True)
class WalletState:
    version: int = 0
    balance: int = 0
    purchased: int = 0
    spent: int = 0  # debited for gifts, refunds not deducted
    refunded: int = 0
    gift_seq: int = 0  # gifts debited so far; the next one is gift_seq + 1
    payment_refs: dict[str, int] = field(default_factory=dict)  # ref -> coins credited
    refunded_seqs: dict[str, None] = field(default_factory=dict)  # gift seqs refunded (as str keys)
    recent_sends: dict[str, int] = field(default_factory=dict)  # SendGift id -> debited at (ms)

    def stats(self) -> dict[str, Any]:
        return {"balance": self.balance}

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WalletState:
        return cls(**data)


def thaw(state: WalletState) -> WalletState:
    return replace(
        state,
        payment_refs=dict(state.payment_refs),
        refunded_seqs=dict(state.refunded_seqs),
        recent_sends=dict(state.recent_sends),
    )


def decide(command: Command, state: WalletState) -> list[Event]:
    match command:
        case PurchaseCoins():
            credited = state.payment_refs.get(command.payment_ref)
            if credited is not None:
                if credited != command.coins:
                    raise Rejection(
                        "payment-ref-conflict",
                        f"payment {command.payment_ref} was for {credited} coins, not {command.coins}",
                    )
                return []  # the provider called back twice
            return [
                CoinsPurchased(
                    payment_ref=command.payment_ref,
                    coins=command.coins,
                    balance=state.balance + command.coins,
                    purchased_at=command.issued_at,
                )
            ]
        case SendGift():
            if command.command_id in state.recent_sends:
                return []
            coins = command.coins
            if coins > state.balance:
                raise Rejection(
                    "insufficient-coins",
                    f"{command.count} x {command.gift.name} costs {coins} coins; you have {state.balance}",
                )
            seq = state.gift_seq + 1
            return [
                GiftDebited(
                    gift_tx=f"{command.user_id}:{seq}",
                    seq=seq,
                    send_id=command.command_id,
                    stream_id=command.stream_id,
                    gift_id=command.gift.gift_id,
                    count=command.count,
                    coins=coins,
                    balance=state.balance - coins,
                    debited_at=command.issued_at,
                )
            ]
        case RefundGift():
            if command.seq > state.gift_seq or str(command.seq) in state.refunded_seqs:
                return []  # never debited here, or refunded already
            return [
                GiftRefunded(
                    gift_tx=command.gift_tx,
                    seq=command.seq,
                    stream_id=command.stream_id,
                    coins=command.coins,
                    reason=command.reason,
                    balance=state.balance + command.coins,
                    refunded_at=command.issued_at,
                )
            ]
    raise Rejection("unsupported-command", f"the wallet aggregate does not handle {command.type}")


def evolve(state: WalletState, event: Event) -> WalletState:
    """Changes a thawed state's collections in place."""
    version = state.version + 1
    match event:
        case CoinsPurchased():
            state.payment_refs[event.payment_ref] = event.coins
            return replace(
                state, version=version, balance=event.balance, purchased=state.purchased + event.coins
            )
        case GiftDebited():
            at = millis(event.debited_at)
            sends = state.recent_sends
            while sends and next(iter(sends.values())) < at - IDEMPOTENCY_WINDOW_MS:
                del sends[next(iter(sends))]  # oldest first: bounded by the window
            sends[event.send_id] = at
            return replace(
                state,
                version=version,
                balance=event.balance,
                spent=state.spent + event.coins,
                gift_seq=event.seq,
            )
        case GiftRefunded():
            state.refunded_seqs[str(event.seq)] = None
            return replace(
                state, version=version, balance=event.balance, refunded=state.refunded + event.coins
            )
    return replace(state, version=version)
