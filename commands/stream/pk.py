"""PK battles on the stream's side: linking to a battle (or refusing to) and unlinking; while
linked, the stream's gifts score there (`processors.streams`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from spaktok.commands.stream.base import Deciders
from spaktok.commands.stream.state import PK_LEFT_KEPT, Pk, StreamState
from spaktok.commands.streams import LinkBattle, UnlinkBattle
from spaktok.events.base import Event
from spaktok.events.streams import BattleLinked, BattleLinkRefusal, BattleLinkRefused, BattleUnlinked


def battle_link_refusal(
    command: LinkBattle, state: StreamState
) -> BattleLinkRefusal | Literal["stream-not-found"] | None:
    """Why this stream cannot join the battle, if it cannot (both sides are checked by their streams)."""
    if state.status == "none":
        return "stream-not-found"
    if state.status != "live":
        return "stream-not-live"
    if state.user_id != command.broadcaster_id:
        return "not-stream-owner"
    if state.pk.pk_battle_id and state.pk.pk_battle_id != command.battle_id:
        return "stream-in-battle"
    return None


def _link(command: LinkBattle, state: StreamState) -> list[Event]:
    """PK battle: a live stream in no other battle links; otherwise a refusal the battle hears of.

    An unknown stream records nothing (no stream to record it on); its refusal travels all the same.
    """
    if state.pk.pk_battle_id == command.battle_id or command.battle_id in state.pk.pk_left:
        return []  # linked already, or left already: a late copy (the battle hears "not linked")
    refusal = battle_link_refusal(command, state)
    if refusal == "stream-not-found":
        return []
    if refusal is not None:
        return [BattleLinkRefused(battle_id=command.battle_id, reason=refusal, refused_at=command.issued_at)]
    return [
        BattleLinked(
            battle_id=command.battle_id,
            side=command.side,
            opponent_stream_id=command.opponent_stream_id,
            opponent_user_id=command.opponent_user_id,
            linked_at=command.issued_at,
        )
    ]


def _unlink(command: UnlinkBattle, state: StreamState) -> list[Event]:
    if state.pk.pk_battle_id != command.battle_id:
        return []  # not (or no longer) in that battle; the battle hears so all the same
    return [BattleUnlinked(battle_id=command.battle_id, reason="battle_over", unlinked_at=command.issued_at)]


DECIDERS: Deciders = {LinkBattle: _link, UnlinkBattle: _unlink}


def _linked(pk: Pk, event: BattleLinked) -> Pk:
    return Pk(
        pk_battle_id=event.battle_id, pk_opponent_stream_id=event.opponent_stream_id, pk_side=event.side
    )


def _unlinked(pk: Pk, event: BattleUnlinked) -> Pk:
    return Pk(pk_left=(*pk.pk_left, event.battle_id)[-PK_LEFT_KEPT:])


FOLDS: dict[type[Event], Callable[[Pk, Any], Pk]] = {BattleLinked: _linked, BattleUnlinked: _unlinked}
