"""A user's coin wallet: purchases credit it, gifts debit it, undeliverable gifts are refunded.

Every coin movement is one of these events, each carrying the balance after it, so an auditor can
replay any wallet from the log alone (`spaktok ledger check` does).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from spaktok.events.base import Event, register_event


class WalletEvent(Event):
    aggregate_type: ClassVar[str] = "wallet"


@register_event
class CoinsPurchased(WalletEvent):
    type: Literal["wallets.CoinsPurchased"] = "wallets.CoinsPurchased"
    payment_ref: str
    coins: int
    balance: int  # after this purchase
    purchased_at: datetime


@register_event
class GiftDebited(WalletEvent):
    """The first step of the gift saga: the sender paid; the stream decides delivery next."""

    type: Literal["wallets.GiftDebited"] = "wallets.GiftDebited"
    # names the gift through the whole saga: "tx_…" derived from send_id (commands/wallets.py
    # gift_transaction_id); debits logged before issue #16 carry "{sender}:{seq}", still valid
    gift_tx: str
    seq: int  # the wallet's gift counter: the stream drops a sender's gifts it has seen by it
    send_id: str  # the SendGift command id: a client retry within the idempotency window is a no-op
    stream_id: str
    gift_id: str
    count: int
    coins: int  # coin cost of the whole send (count x unit cost)
    balance: int
    debited_at: datetime


@register_event
class GiftRefunded(WalletEvent):
    """The compensation: the stream could not take the gift (ended, gifts off, sender banned)."""

    type: Literal["wallets.GiftRefunded"] = "wallets.GiftRefunded"
    gift_tx: str
    seq: int
    stream_id: str
    coins: int
    reason: str
    balance: int
    refunded_at: datetime


@register_event
class WalletCommandRejected(WalletEvent):
    type: Literal["wallets.CommandRejected"] = "wallets.CommandRejected"
    command_type: str
    reason: str
    detail: str
