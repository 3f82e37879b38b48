"""Wiring of the wallet aggregate: a debited gift goes on to the stream (the saga's next step)."""

from __future__ import annotations

from spaktok.commands import wallet_decide
from spaktok.commands.base import Command
from spaktok.commands.streams import DeliverGift
from spaktok.commands.wallet_decide import WalletState
from spaktok.commands.wallets import SendGift
from spaktok.events.wallets import GiftDebited, WalletCommandRejected
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, forward_id, refused_as
from spaktok.processors.core import Sealed


def _follow_ups(command: Command, envelopes: list[Sealed], state: WalletState) -> list[Forward]:
    if not isinstance(command, SendGift):
        return []
    forwards = []
    for sealed in envelopes:
        debited = sealed.event
        if not isinstance(debited, GiftDebited):
            continue
        deliver = DeliverGift(
            command_id=forward_id(command, "deliver-gift"),
            correlation_id=command.correlation,  # the stream's decision answers the sender
            issued_at=command.issued_at,
            actor_id=command.user_id,
            stream_id=command.stream_id,
            sender_id=command.user_id,
            sender_name=command.sender_name,
            sender_profile_image=command.sender_profile_image,
            gift_tx=debited.gift_tx,
            wallet_seq=debited.seq,
            gift=command.gift,
            count=command.count,
            coins=debited.coins,
            coin_value_usd=command.coin_value_usd,
            combo_window_ms=command.combo_window_ms,
        )
        forwards.append(Forward(topics.COMMANDS_STREAMS.name, deliver))
    return forwards


def _is_final(command: Command, envelopes: list[Sealed]) -> bool:
    # a debited gift is answered by the stream's delivery decision; refunds answer nobody
    if isinstance(command, SendGift):
        return not envelopes
    return command.type != "wallets.RefundGift"


WALLETS = AggregateSpec(
    aggregate_type="wallet",
    events_topic=topics.EVENTS_WALLETS.name,
    initial=WalletState,
    load=WalletState.from_dict,
    decide=wallet_decide.decide,
    evolve=wallet_decide.evolve,
    rejected=refused_as(WalletCommandRejected),
    follow_ups=_follow_ups,
    is_final=_is_final,
    thaw=wallet_decide.thaw,
    split=wallet_decide.split,
    join=wallet_decide.join,
    remember_refusals=True,  # a refused send stays refused under its key
)
