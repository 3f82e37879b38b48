"""Commands on a user's coin wallet: the single writer of that user's balance."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from spaktok.commands.base import Command, register_command
from spaktok.commands.gifts import MAX_GIFTS_PER_SEND, CatalogGift
from spaktok.commands.stream_state import COMBO_MEMORY_MS

MAX_PURCHASE_COINS = 10_000_000


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
