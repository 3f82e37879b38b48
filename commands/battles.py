"""Commands on a PK battle; the aggregate id is the battle id."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from spaktok.commands.base import Command, register_command


class BattleCommand(Command):
    aggregate_type: ClassVar[str] = "battle"
    battle_id: str = Field(min_length=1, max_length=64)

    @property
    def aggregate_id(self) -> str:
        return self.battle_id


@register_command
class InviteBattle(BattleCommand):
    """The broadcaster of `stream_id` challenges the broadcaster of `opponent_stream_id`.

    The API fills in who owns each stream from the read model (a stream's owner never changes);
    whether both streams are live and free is decided by the streams themselves when they link.
    """

    type: Literal["battles.InviteBattle"] = "battles.InviteBattle"
    stream_id: str
    broadcaster_name: str
    opponent_stream_id: str
    opponent_broadcaster_id: str
    duration_s: int = Field(gt=0)
    invite_ttl_s: int = Field(gt=0)  # settings, carried so the decision reads no configuration
    winner_bonus: int = Field(ge=0)


@register_command
class AcceptBattle(BattleCommand):
    type: Literal["battles.AcceptBattle"] = "battles.AcceptBattle"


@register_command
class DeclineBattle(BattleCommand):
    type: Literal["battles.DeclineBattle"] = "battles.DeclineBattle"


@register_command
class EndBattle(BattleCommand):
    """Early, by either broadcaster (or a withdrawn invitation); `time_up` from the worker's timer."""

    type: Literal["battles.EndBattle"] = "battles.EndBattle"
    reason: Literal["time_up", "ended_early"] = "ended_early"


@register_command
class ExpireBattle(BattleCommand):
    """Internal, from the worker's timer: an invitation nobody answered in time."""

    type: Literal["battles.ExpireBattle"] = "battles.ExpireBattle"


@register_command
class RecordBattleLink(BattleCommand):
    """Internal: a stream's answer to LinkBattle."""

    type: Literal["battles.RecordBattleLink"] = "battles.RecordBattleLink"
    stream_id: str
    linked: bool
    reason: str = ""


class BattleGift(BaseModel):
    """A gift a linked stream took, named by its GiftReceived sequence on that stream."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_sequence: int = Field(gt=0)
    gift_tx: str
    sender_id: str
    coins: int = Field(ge=0)
    sent_at: datetime


@register_command
class ScoreBattle(BattleCommand):
    """Internal: gifts a linked stream took, in its order (a stream batch sends one command)."""

    type: Literal["battles.ScoreBattle"] = "battles.ScoreBattle"
    stream_id: str
    gifts: list[BattleGift] = Field(min_length=1)


@register_command
class CloseBattleSide(BattleCommand):
    """Internal: a stream unlinked from the battle (asked to, or because it ended). It comes after
    every gift that stream forwarded, so the battle knows that side's score is complete."""

    type: Literal["battles.CloseBattleSide"] = "battles.CloseBattleSide"
    stream_id: str
    stream_ended: bool = False
