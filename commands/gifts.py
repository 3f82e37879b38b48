"""The gift catalog and the revenue rule: what a gift costs and how its coins are shared.

Prices travel on the commands (the API resolves the catalog) and are recorded on the events, so a
decision replayed after a catalog change still yields the same events, and an auditor sees the price
that was charged rather than today's.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field

# spec §6.1: standard broadcasters receive 50 % of a gift, premium broadcasters 90 %
REVENUE_RULE = "spec-6.1-v1"
BROADCASTER_PERCENT = {False: 50, True: 90}
MAX_GIFTS_PER_SEND = 99  # one send of `count` gifts (TikTok's combo button sends up to 99)


class CatalogGift(BaseModel):
    """One catalog entry. `usd_value` is derived from the coin cost and the configured coin value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gift_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    image_url: str
    animation_url: str
    coin_cost: int = Field(gt=0, le=1_000_000)
    comboable: bool = False


def load_catalog(path: Path | None = None) -> dict[str, CatalogGift]:
    """The catalog file (schemas/gift_catalog.json unless a path is configured), by gift id."""
    if path is None:
        raw = resources.files("spaktok.schemas").joinpath("gift_catalog.json").read_bytes()
    else:
        raw = path.read_bytes()
    entries = orjson.loads(raw)["gifts"]
    catalog = {}
    for entry in entries:
        gift = CatalogGift(
            gift_id=entry["giftId"],
            name=entry["name"],
            image_url=entry["imageUrl"],
            animation_url=entry["animationUrl"],
            coin_cost=entry["coinCost"],
            comboable=entry.get("comboable", False),
        )
        if gift.gift_id in catalog:
            raise ValueError(f"gift {gift.gift_id!r} appears twice in the catalog")
        catalog[gift.gift_id] = gift
    return catalog


def split_revenue(coins: int, premium: bool) -> tuple[int, int]:
    """(broadcaster share, platform share) in whole coins; the remainder of the floor goes to the
    platform, so the two always add up to `coins` exactly."""
    broadcaster = coins * BROADCASTER_PERCENT[premium] // 100
    return broadcaster, coins - broadcaster


def usd(coins: int, coin_value_usd: str) -> str:
    """Coins at the configured coin value, as a two-decimal string (API.md's money convention)."""
    value = Decimal(coins) * Decimal(coin_value_usd)
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def coins_for_usd(amount_usd: str, coin_value_usd: str) -> int | None:
    """The whole number of coins worth `amount_usd`, or None when no whole number is."""
    coins = Decimal(amount_usd) / Decimal(coin_value_usd)
    if coins != coins.to_integral_value():
        return None
    return int(coins)
