"""Gifts arriving at the stream: taken or refused (the wallet then refunds), the gifters'
leaderboard, and combos (the same gift again within the combo window continues a combo)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spaktok.commands.gifts import REVENUE_RULE, split_revenue, usd
from spaktok.commands.stream.base import Deciders
from spaktok.commands.stream.state import COMBO_MEMORY_MS, Gifting, StreamState, copy_with, millis
from spaktok.commands.streams import DeliverGift
from spaktok.events.base import Event
from spaktok.events.streams import GiftReceived, GiftRefusal, GiftRefused


def _refusal(command: DeliverGift, state: StreamState) -> GiftRefusal | None:
    if state.status == "none":
        return "stream-not-found"
    if state.status != "live":
        return "stream-not-live"
    if not state.allow_gifts:
        return "gifts-disabled"
    if command.sender_id in state.moderation.banned:
        return "user-banned"
    if command.sender_id == state.user_id:
        return "cannot-gift-self"
    return None


def _combo(command: DeliverGift, gifting: Gifting) -> tuple[str, int]:
    """(combo id, count): the sender's combo continued, or a new one named after this gift."""
    previous = gifting.combos.get(command.sender_id)
    if (
        command.gift.comboable
        and previous is not None
        and previous[0] == command.gift.gift_id
        and 0 <= millis(command.issued_at) - previous[3] <= command.combo_window_ms
    ):
        return previous[1], previous[2] + command.count
    return command.gift_tx, command.count


def _deliver(command: DeliverGift, state: StreamState) -> list[Event]:
    """Take a paid gift or refuse it (the wallet then refunds); each wallet gift is decided once."""
    gifter = state.gifting.gifters.get(command.sender_id)
    if gifter is not None and command.wallet_seq <= gifter[1]:
        return []  # decided already: a redelivery
    gift = command.gift
    refusal = _refusal(command, state)
    if refusal is not None:
        return [
            GiftRefused(
                gift_tx=command.gift_tx,
                wallet_seq=command.wallet_seq,
                sender_id=command.sender_id,
                gift_id=gift.gift_id,
                count=command.count,
                coin_cost=command.coins,
                reason=refusal,
                refused_at=command.issued_at,
            )
        ]
    return [_received(command, state, (gifter[0] if gifter else 0) + command.coins)]


def _received(command: DeliverGift, state: StreamState, sender_total_coins: int) -> GiftReceived:
    gift = command.gift
    combo_id, combo_count = _combo(command, state.gifting)
    broadcaster_share, platform_share = split_revenue(command.coins, state.is_premium)
    return GiftReceived(
        gift_tx=command.gift_tx,
        wallet_seq=command.wallet_seq,
        sender_id=command.sender_id,
        sender_username=command.sender_name,
        sender_profile_image=command.sender_profile_image,
        receiver_id=state.user_id,
        receiver_username=state.username,
        gift_id=gift.gift_id,
        gift_name=gift.name,
        gift_image_url=gift.image_url,
        gift_animation_url=gift.animation_url,
        count=command.count,
        coin_cost=command.coins,
        real_value_usd=usd(command.coins, command.coin_value_usd),
        broadcaster_share=broadcaster_share,
        platform_share=platform_share,
        is_premium_broadcaster=state.is_premium,
        revenue_rule=REVENUE_RULE,
        is_combo=combo_count > 1,
        combo_id=combo_id,
        combo_count=combo_count,
        sender_total_coins=sender_total_coins,
        gifts=state.gifting.gifts + command.count,
        gift_revenue=state.gifting.gift_revenue + command.coins,
        sent_at=command.issued_at,
    )


DECIDERS: Deciders = {DeliverGift: _deliver}


def _taken(gifting: Gifting, event: GiftReceived) -> Gifting:
    sent = millis(event.sent_at)
    combos, pruned = gifting.combos, gifting.combos_pruned_ms
    if sent - pruned >= COMBO_MEMORY_MS:
        # bounded to the senders of the last minute or two; pruned now and then, not per gift
        for sender in [s for s, c in combos.items() if c[3] < sent - COMBO_MEMORY_MS]:
            del combos[sender]
        pruned = sent
    gifter = gifting.gifters.get(event.sender_id, [0, 0, 0])
    gifting.gifters[event.sender_id] = [
        gifter[0] + event.coin_cost,
        event.wallet_seq,
        gifter[2] + event.count,
    ]
    combos[event.sender_id] = [event.gift_id, event.combo_id, event.combo_count, sent]
    return copy_with(gifting, gifts=event.gifts, gift_revenue=event.gift_revenue, combos_pruned_ms=pruned)


def _refused(gifting: Gifting, event: GiftRefused) -> Gifting:
    gifter = gifting.gifters.get(event.sender_id, [0, 0, 0])
    gifting.gifters[event.sender_id] = [gifter[0], event.wallet_seq, gifter[2]]
    return gifting


# how each gift event changes a thawed Gifting: the maps in place, the rest replaced
FOLDS: dict[type[Event], Callable[[Gifting, Any], Gifting]] = {
    GiftReceived: _taken,
    GiftRefused: _refused,
}
