"""Commands on a user's coin wallet: the single writer of that user's balance."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from spaktok.commands.base import Command, register_command
from spaktok.commands.gifts import MAX_GIFTS_PER_SEND, CatalogGift
from spaktok.commands.stream_state import COMBO_MEMORY_MS
from spaktok.events.envelope import derive_id

MAX_PURCHASE_COINS = 10_000_000
GIFT_TX_PREFIX = "tx_"  # new-shape ids; gifts debited before issue #16 keep "{sender}:{seq}"


def gift_transaction_id(send_id: str) -> str:
    """The id of the gift transaction started by SendGift `send_id` (its command id, derived from the
    client's Idempotency-Key when one was given): "tx_" + 24 hex digits of a uuid5 of it.

    A function of the intent alone, never of the wallet's state (as the old "{sender}:{seq}" was), so
    a send wrongly debited twice carries one id twice and the ledger audit sees it, while two intents
    never share one. Every event of the saga (debit, delivery or refusal, refund, credit, battle
    score) carries it, and the API answers it as `transactionId` for the client's receipt.
    """
    return GIFT_TX_PREFIX + derive_id(send_id, "gift-tx").replace("-", "")[:24]


class WalletCommand(Command):
    aggregate_type: ClassVar[str] = "wallet"
    user_id: str = Field(min_length=1, max_length=128)

    @property
    def aggregate_id(self) -> str:
        return self.user_id


@register_command
class PurchaseCoins(WalletCommand):
    """Credit bought coins (admin or payment-provider callback); one effect per `payment_ref`."""

    type: Literal["wallets.PurchaseCoins"] = "wallets.PurchaseCoins"
    coins: int = Field(gt=0, le=MAX_PURCHASE_COINS)
    payment_ref: str = Field(min_length=1, max_length=128)


@register_command
class SendGift(WalletCommand):
    """A viewer sends `count` of a catalog gift to a stream: the saga starts with the debit."""

    type: Literal["wallets.SendGift"] = "wallets.SendGift"
    stream_id: str = Field(min_length=1, max_length=64)
    sender_name: str
    sender_profile_image: str | None = None
    gift: CatalogGift
    count: int = Field(ge=1, le=MAX_GIFTS_PER_SEND)
    coin_value_usd: str  # settings, carried so the decision does not read configuration
    combo_window_ms: int = Field(ge=0, le=COMBO_MEMORY_MS)

    @property
    def coins(self) -> int:
        return self.gift.coin_cost * self.count


@register_command
class RefundGift(WalletCommand):
    """Internal compensation: the stream refused gift `seq` of this wallet."""

    type: Literal["wallets.RefundGift"] = "wallets.RefundGift"
    gift_tx: str
    seq: int = Field(gt=0)
    stream_id: str
    coins: int = Field(gt=0)
    reason: str
