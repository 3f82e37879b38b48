"""Wiring of the PK battle aggregate: linking and unlinking the streams, and the winner's bonus."""

from __future__ import annotations

from spaktok.commands import battle_decide
from spaktok.commands.base import Command
from spaktok.commands.battle_decide import BattleState
from spaktok.commands.battles import CloseBattleSide, EndBattle, ExpireBattle, RecordBattleLink, ScoreBattle
from spaktok.commands.earnings import Credit, CreditEarnings, pk_bonus_line
from spaktok.commands.streams import LinkBattle, UnlinkBattle
from spaktok.events.battles import BattleCommandRejected
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, follow_up, refused_as
from spaktok.processors.core import Sealed


def _follow_ups(command: Command, envelopes: list[Sealed], state: BattleState) -> list[Forward]:
    if isinstance(command, RecordBattleLink) and command.linked and not _wants_link(state, command.stream_id):
        return _unlink(command, state, [command.stream_id])
    forwards: list[Forward] = []
    for env in envelopes:
        if env.type == "battles.BattleAccepted":
            forwards.extend(_link(command, state))
        elif env.type in ("battles.BattleCancelled", "battles.BattleClosing"):
            forwards.extend(_unlink(command, state, _linked(state)))
        elif env.type == "battles.BattleEnded" and env.payload["winner_bonus"] > 0:
            forwards.append(_bonus(command, env))
    return forwards


def _link(command: Command, state: BattleState) -> list[Forward]:
    sides = (
        (1, state.stream1_id, state.broadcaster1_id, state.stream2_id, state.broadcaster2_id),
        (2, state.stream2_id, state.broadcaster2_id, state.stream1_id, state.broadcaster1_id),
    )
    return [
        Forward(
            topics.COMMANDS_STREAMS.name,
            LinkBattle(
                **follow_up(command, f"link-battle:{side}"),
                actor_id=command.actor_id,
                stream_id=stream,
                battle_id=command.aggregate_id,
                broadcaster_id=owner,
                side=side,  # type: ignore[arg-type]
                opponent_stream_id=opponent,
                opponent_user_id=opponent_owner,
            ),
        )
        for side, stream, owner, opponent, opponent_owner in sides
    ]


def _wants_link(state: BattleState, stream: str) -> bool:
    return state.status in ("linking", "active") and state.links.get(stream) == "linked"


def _linked(state: BattleState) -> list[str]:
    return [stream for stream in state.streams if state.links.get(stream) == "linked"]


def _unlink(command: Command, state: BattleState, streams: list[str]) -> list[Forward]:
    """These streams leave the battle; each then reports its side closed.

    Also sent to a stream that reports a link the battle no longer wants: a link command redelivered
    after the stream had left (beyond the worker's memory of command ids) is undone this way.
    """
    return [
        Forward(
            topics.COMMANDS_STREAMS.name,
            UnlinkBattle(
                **follow_up(command, f"unlink-battle:{stream}"),
                actor_id=command.actor_id,
                stream_id=stream,
                battle_id=command.aggregate_id,
            ),
        )
        for stream in streams
    ]


def _bonus(command: Command, ended: Sealed) -> Forward:
    """The winner's bonus goes through the ledger like a gift share (source `pk_bonus`)."""
    credit = CreditEarnings(
        **follow_up(command, "pk-bonus"),
        actor_id=command.actor_id,
        broadcaster_id=ended.payload["winner_id"],
        credits=[
            Credit(
                source="pk_bonus",
                stream_id=pk_bonus_line(ended.aggregate_id),
                stream_sequence=ended.sequence,
                coins=ended.payload["winner_bonus"],
            )
        ],
    )
    return Forward(topics.COMMANDS_EARNINGS.name, credit)


INTERNAL = ExpireBattle | RecordBattleLink | ScoreBattle | CloseBattleSide


def _is_final(command: Command, envelopes: list[Sealed]) -> bool:
    """The broadcasters' own commands are answered; the saga's and the timer's are not."""
    if isinstance(command, EndBattle) and command.reason == "time_up":
        return False
    return not isinstance(command, INTERNAL)


BATTLES = AggregateSpec(
    aggregate_type="battle",
    events_topic=topics.EVENTS_BATTLES.name,
    initial=BattleState,
    load=BattleState.from_dict,
    decide=battle_decide.decide,
    evolve=battle_decide.evolve,
    rejected=refused_as(BattleCommandRejected),
    follow_ups=_follow_ups,
    is_final=_is_final,
    thaw=battle_decide.thaw,
    is_notice=lambda event: event.notice,
    notice_topic=topics.NOTIFICATIONS.name,
)
