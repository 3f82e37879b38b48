"""The PK battle decider (spec §2.9, §3.5): invitation, linking, scoring, closing, result.

Life of a battle: `invited` → (accepted) `linking` → (both streams linked) `active` → (time up, a
broadcaster ends it, or a stream ends) `closing` → (both streams unlinked) `ended`. Or it stops
early: `declined`, `expired`, `cancelled` (a stream could not link, or the inviter withdrew).

Which gifts count is decided here alone, from the gift's send time: sent at or after the start and
before the close. A stream forwards every gift it takes while linked, and its unlinking reaches the
battle after all of them (one stream's commands arrive in its order), so when both sides have
closed the scores are complete and the result is final: no gift is counted late or twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from spaktok.commands.base import Command, Rejection
from spaktok.commands.battles import (
    AcceptBattle,
    CloseBattleSide,
    DeclineBattle,
    EndBattle,
    ExpireBattle,
    InviteBattle,
    RecordBattleLink,
    ScoreBattle,
)
from spaktok.commands.stream_state import millis
from spaktok.events.base import Event
from spaktok.events.battles import (
    BattleAccepted,
    BattleCancelled,
    BattleClosing,
    BattleDeclined,
    BattleEnd,
    BattleEnded,
    BattleExpired,
    BattleInvited,
    BattleNotified,
    BattleScored,
    BattleSideClosed,
    BattleSideLinked,
    BattleStarted,
)
from spaktok.events.envelope import derive_id

Status = Literal[
    "none", "invited", "linking", "active", "closing", "ended", "declined", "expired", "cancelled"
]
SCORING = ("linking", "active", "closing")  # a gift forwarded in these may count (by its send time)
SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class BattleState:
    version: int = 0
    status: Status = "none"
    stream1_id: str = ""
    broadcaster1_id: str = ""
    broadcaster1_name: str = ""
    stream2_id: str = ""
    broadcaster2_id: str = ""
    duration_s: int = 0
    winner_bonus: int = 0
    expires_ms: int = 0
    started_ms: int = 0  # the acceptance: gifts sent from then on count
    ends_ms: int = 0
    closed_ms: int = 0  # gifts sent at or after this do not count
    last_scored_ms: int = 0  # the latest send time counted: a close is never earlier than it
    close_reason: str = ""
    score1: int = 0
    score2: int = 0
    links: dict[str, str] = field(default_factory=dict)  # stream -> linked | refused:<why> | closed
    scored_through: dict[str, int] = field(default_factory=dict)  # stream -> last GiftReceived scored

    def stats(self) -> dict[str, Any]:
        return {"status": self.status, "score1": self.score1, "score2": self.score2}

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BattleState:
        return cls(**data)

    def side(self, stream_id: str) -> Literal[1, 2] | None:
        if stream_id == self.stream1_id:
            return 1
        if stream_id == self.stream2_id:
            return 2
        return None

    @property
    def streams(self) -> tuple[str, str]:
        return (self.stream1_id, self.stream2_id)


def thaw(state: BattleState) -> BattleState:
    return replace(state, links=dict(state.links), scored_through=dict(state.scored_through))


def is_due(state: BattleState, now_ms: int) -> bool:
    """Is this a running battle whose time is up (for the worker's timer)?"""
    return state.status == "active" and now_ms >= state.ends_ms


def invite_expired(state: BattleState, now_ms: int) -> bool:
    """Is this an invitation nobody answered in time (for the worker's timer)?"""
    return state.status == "invited" and now_ms >= state.expires_ms


def decide(command: Command, state: BattleState) -> list[Event]:
    match command:
        case InviteBattle():
            return _invite(command, state)
        case AcceptBattle():
            _require_answerable(command, state)
            return [BattleAccepted(accepted_at=command.issued_at)]
        case DeclineBattle():
            _require_answerable(command, state)
            return _decline(command, state)
        case ExpireBattle():
            if state.status != "invited" or millis(command.issued_at) < state.expires_ms:
                return []
            return [BattleExpired(expired_at=command.issued_at)]
        case EndBattle():
            return _end(command, state)
        case RecordBattleLink():
            return _link_result(command, state)
        case ScoreBattle():
            return _score(command, state)
        case CloseBattleSide():
            return _side_closed(command, state)
    raise Rejection("unsupported-command", f"the battle aggregate does not handle {command.type}")


def _invite(command: InviteBattle, state: BattleState) -> list[Event]:
    if state.status != "none":
        raise Rejection("battle-exists", "a battle with this id exists")
    if command.stream_id == command.opponent_stream_id or command.actor_id == command.opponent_broadcaster_id:
        raise Rejection("cannot-battle-self", "a battle needs two broadcasters")
    invited = BattleInvited(
        battle_id=command.battle_id,
        stream1_id=command.stream_id,
        broadcaster1_id=command.actor_id,
        broadcaster1_name=command.broadcaster_name,
        stream2_id=command.opponent_stream_id,
        broadcaster2_id=command.opponent_broadcaster_id,
        duration=command.duration_s,
        winner_bonus=command.winner_bonus,
        invited_at=command.issued_at,
        expires_at=command.issued_at + timedelta(seconds=command.invite_ttl_s),
    )
    to = [command.opponent_broadcaster_id]
    return [
        invited,
        _notice(command, "pk_invited", command.actor_id, command.stream_id, to, command.broadcaster_name),
    ]


def _require_answerable(command: Command, state: BattleState) -> None:
    if state.status == "none":
        raise Rejection("battle-not-found", "no battle with this id")
    if command.actor_id != state.broadcaster2_id:
        raise Rejection("not-battle-opponent", "only the invited broadcaster can answer this invitation")
    if state.status != "invited":
        raise Rejection("battle-not-pending", f"the battle is {state.status}")
    if millis(command.issued_at) >= state.expires_ms:
        raise Rejection("battle-invite-expired", "the invitation has expired")


def _decline(command: Command, state: BattleState) -> list[Event]:
    declined = BattleDeclined(by=command.actor_id, declined_at=command.issued_at)
    to = [state.broadcaster1_id]
    return [declined, _notice(command, "pk_declined", state.broadcaster2_id, state.stream2_id, to, "")]


def _end(command: EndBattle, state: BattleState) -> list[Event]:
    now_ms = millis(command.issued_at)
    if command.reason == "time_up":  # the worker's timer: only a running battle whose time has come
        if state.status != "active" or now_ms < state.ends_ms:
            return []
        return [_closing("time_up", SYSTEM, state.ends_ms)]
    if state.status == "none":
        raise Rejection("battle-not-found", "no battle with this id")
    if command.actor_id not in (state.broadcaster1_id, state.broadcaster2_id):
        raise Rejection("not-battle-broadcaster", "only the two broadcasters can end this battle")
    if state.status == "invited":  # the inviter withdraws; the invited broadcaster declines
        if command.actor_id == state.broadcaster2_id:
            return _decline(command, state)
        return [BattleCancelled(reason="withdrawn", cancelled_at=command.issued_at)]
    if state.status == "linking":
        raise Rejection("battle-starting", "the battle is starting; end it in a moment")
    if state.status in ("closing", "ended"):
        return []  # over already
    if state.status != "active":
        raise Rejection("battle-not-active", f"the battle is {state.status}")
    if now_ms >= state.ends_ms:
        return [_closing("time_up", SYSTEM, state.ends_ms)]
    return [_closing("ended_early", command.actor_id, _close_at(state, now_ms))]


def _close_at(state: BattleState, now_ms: int) -> int:
    """An early close happens now, in the battle's own order: never before a gift it already counted
    (the API processes' clocks differ a little, and a gift stamped a moment after an end request may
    have been counted before that request arrived)."""
    return min(max(now_ms, state.last_scored_ms + 1), state.ends_ms)


def _closing(reason: BattleEnd, by: str, closed_ms: int) -> BattleClosing:
    return BattleClosing(reason=reason, by=by, closed_at=_at(closed_ms))


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _link_result(command: RecordBattleLink, state: BattleState) -> list[Event]:
    if state.status != "linking" or state.side(command.stream_id) is None or command.stream_id in state.links:
        return []  # a redelivered answer, or one for a battle that no longer waits for it
    linked = BattleSideLinked(stream_id=command.stream_id, linked=command.linked, reason=command.reason)
    links = {**state.links, command.stream_id: "linked" if command.linked else f"refused:{command.reason}"}
    return [linked, *_settle_links(command, state, links)]


def _settle_links(command: Command, state: BattleState, links: dict[str, str]) -> list[Event]:
    """Once both streams answered: start, or cancel (the battle then unlinks whoever linked)."""
    if len(links) < 2:
        return []
    if all(value == "linked" for value in links.values()):
        started = BattleStarted(
            stream1_id=state.stream1_id,
            stream2_id=state.stream2_id,
            started_at=_at(state.started_ms),
            ends_at=_at(state.ends_ms),
        )
        return [started]
    failed = next(v for s, v in sorted(links.items(), key=lambda kv: state.side(kv[0]) or 0) if v != "linked")
    reason = failed.removeprefix("refused:") if failed.startswith("refused:") else "stream-ended"
    return [BattleCancelled(reason=reason, cancelled_at=command.issued_at)]


def _score(command: ScoreBattle, state: BattleState) -> list[Event]:
    side = state.side(command.stream_id)
    if side is None or state.status not in SCORING:
        return []
    end_ms = state.closed_ms if state.status == "closing" else state.ends_ms
    through = state.scored_through.get(command.stream_id, 0)
    score1, score2 = state.score1, state.score2
    events: list[Event] = []
    for gift in command.gifts:
        if gift.stream_sequence <= through:
            continue  # scored already: a redelivery
        sent_ms = millis(gift.sent_at)
        if not state.started_ms <= sent_ms < end_ms:
            continue  # sent before the battle or after it closed
        through = gift.stream_sequence
        if side == 1:
            score1 += gift.coins
        else:
            score2 += gift.coins
        events.append(
            BattleScored(
                stream1_id=state.stream1_id,
                stream2_id=state.stream2_id,
                stream_id=command.stream_id,
                side=side,
                stream_sequence=gift.stream_sequence,
                gift_tx=gift.gift_tx,
                sender_id=gift.sender_id,
                coins=gift.coins,
                score1=score1,
                score2=score2,
                sent_at=gift.sent_at,
            )
        )
    return events


def _side_closed(command: CloseBattleSide, state: BattleState) -> list[Event]:
    stream = command.stream_id
    if state.side(stream) is None or state.links.get(stream) == "closed":
        return []
    closed = BattleSideClosed(stream_id=stream)
    if state.status == "linking":
        return [closed, *_settle_links(command, state, {**state.links, stream: "closed"})]
    if state.status == "active":  # that stream ended: the battle is over now, the other side unlinks
        owner = state.broadcaster1_id if stream == state.stream1_id else state.broadcaster2_id
        closing = _closing("stream_ended", owner, _close_at(state, millis(command.issued_at)))
        return [closing, closed]
    if state.status == "closing":
        others_closed = all(state.links.get(s) == "closed" for s in state.streams if s != stream)
        return [closed, *(_result(command, state) if others_closed else [])]
    return []


def _result(command: Command, state: BattleState) -> list[Event]:
    """Winner by score; equal scores are a tie, with no bonus."""
    tie = state.score1 == state.score2
    winner_side = None if tie else (1 if state.score1 > state.score2 else 2)
    winner = {1: state.broadcaster1_id, 2: state.broadcaster2_id}.get(winner_side or 0)
    winner_stream = {1: state.stream1_id, 2: state.stream2_id}.get(winner_side or 0)
    ended = BattleEnded(
        stream1_id=state.stream1_id,
        stream2_id=state.stream2_id,
        reason=state.close_reason,  # type: ignore[arg-type]
        score1=state.score1,
        score2=state.score2,
        winner_id=winner,
        winner_stream_id=winner_stream,
        is_tie=tie,
        winner_bonus=0 if tie else state.winner_bonus,
        started_at=_at(state.started_ms),
        ended_at=_at(state.closed_ms),
    )
    to = [state.broadcaster1_id, state.broadcaster2_id]
    notice = _notice(
        command, "pk_ended", state.broadcaster1_id, state.stream1_id, to, state.broadcaster1_name
    )
    return [ended, notice]


def _notice(
    command: Command,
    kind: Literal["pk_invited", "pk_declined", "pk_ended"],
    channel: str,
    stream_id: str,
    recipients: list[str],
    actor_name: str,
) -> BattleNotified:
    """One id per battle and occasion: a retried command tells them once."""
    return BattleNotified(
        notification_id=derive_id("battle", command.aggregate_id, kind),
        kind=kind,
        channel_id=channel,
        stream_id=stream_id,
        title="PK battle",
        actor_name=actor_name,
        recipients=recipients,
        sent_at=command.issued_at,
    )


def evolve(state: BattleState, event: Event) -> BattleState:
    version = state.version + 1
    match event:
        case BattleInvited():
            return replace(
                state,
                version=version,
                status="invited",
                stream1_id=event.stream1_id,
                broadcaster1_id=event.broadcaster1_id,
                broadcaster1_name=event.broadcaster1_name,
                stream2_id=event.stream2_id,
                broadcaster2_id=event.broadcaster2_id,
                duration_s=event.duration,
                winner_bonus=event.winner_bonus,
                expires_ms=millis(event.expires_at),
            )
        case BattleAccepted():
            accepted = millis(event.accepted_at)
            ends = accepted + state.duration_s * 1000
            return replace(state, version=version, status="linking", started_ms=accepted, ends_ms=ends)
        case BattleDeclined():
            return replace(state, version=version, status="declined")
        case BattleExpired():
            return replace(state, version=version, status="expired")
        case BattleCancelled():
            return replace(state, version=version, status="cancelled")
        case BattleSideLinked():
            state.links[event.stream_id] = "linked" if event.linked else f"refused:{event.reason}"
            return replace(state, version=version)
        case BattleStarted():
            return replace(state, version=version, status="active")
        case BattleScored():
            state.scored_through[event.stream_id] = event.stream_sequence
            last = max(state.last_scored_ms, millis(event.sent_at))
            return replace(
                state, version=version, score1=event.score1, score2=event.score2, last_scored_ms=last
            )
        case BattleClosing():
            closed = millis(event.closed_at)
            return replace(
                state, version=version, status="closing", closed_ms=closed, close_reason=event.reason
            )
        case BattleSideClosed():
            state.links[event.stream_id] = "closed"
            return replace(state, version=version)
        case BattleEnded():
            return replace(state, version=version, status="ended")
    return replace(state, version=version)
