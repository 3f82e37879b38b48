"""PK battles (spec §2.9, §3.5): two live streams compete for gifts for a fixed time.

The battle aggregate decides everything about a battle: who may accept, when it starts and ends,
which gifts count and who won. The two streams only link to it (and say when they unlink), and
forward the gifts they take while linked. docs/pk-battles.md has the whole saga.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from spaktok.events.base import Event, register_event

BattleEnd = Literal["time_up", "ended_early", "stream_ended"]


class BattleEvent(Event):
    aggregate_type: ClassVar[str] = "battle"


@register_event
class BattleInvited(BattleEvent):
    type: Literal["battles.BattleInvited"] = "battles.BattleInvited"
    battle_id: str
    stream1_id: str  # the inviting stream (side 1)
    broadcaster1_id: str
    broadcaster1_name: str
    stream2_id: str  # the invited stream (side 2)
    broadcaster2_id: str
    duration: int  # seconds, once started
    winner_bonus: int  # coins credited to the winner's earnings (0: none)
    invited_at: datetime
    expires_at: datetime


@register_event
class BattleAccepted(BattleEvent):
    """Both broadcasters agree; the streams are asked to link (each must be live and free)."""

    type: Literal["battles.BattleAccepted"] = "battles.BattleAccepted"
    accepted_at: datetime


@register_event
class BattleDeclined(BattleEvent):
    type: Literal["battles.BattleDeclined"] = "battles.BattleDeclined"
    by: str
    declined_at: datetime


@register_event
class BattleExpired(BattleEvent):
    type: Literal["battles.BattleExpired"] = "battles.BattleExpired"
    expired_at: datetime


@register_event
class BattleSideLinked(BattleEvent):
    """One stream's answer to the link: linked, or why not (not live, in another battle, ended)."""

    type: Literal["battles.BattleSideLinked"] = "battles.BattleSideLinked"
    stream_id: str
    linked: bool
    reason: str = ""


@register_event
class BattleCancelled(BattleEvent):
    """The battle never started: a stream could not link, or the inviter withdrew the invitation."""

    type: Literal["battles.BattleCancelled"] = "battles.BattleCancelled"
    reason: str
    cancelled_at: datetime


@register_event
class BattleStarted(BattleEvent):
    type: Literal["battles.BattleStarted"] = "battles.BattleStarted"
    stream1_id: str  # both streams on every event the live feeds show, so the feed can route it
    stream2_id: str
    started_at: datetime
    ends_at: datetime


@register_event
class BattleScored(BattleEvent):
    """One gift taken by a linked stream during the battle: its coins go to that side."""

    type: Literal["battles.BattleScored"] = "battles.BattleScored"
    stream1_id: str
    stream2_id: str
    stream_id: str
    side: Literal[1, 2]
    stream_sequence: int  # the GiftReceived on that stream: each scores once, in the stream's order
    gift_tx: str
    sender_id: str
    coins: int
    score1: int
    score2: int
    sent_at: datetime


@register_event
class BattleClosing(BattleEvent):
    """The battle is over at `closed_at`; the streams are unlinking, gifts sent before still count."""

    type: Literal["battles.BattleClosing"] = "battles.BattleClosing"
    reason: BattleEnd
    by: str  # a broadcaster, or "system"
    closed_at: datetime


@register_event
class BattleSideClosed(BattleEvent):
    """A stream unlinked: every gift it forwarded before this has been scored."""

    type: Literal["battles.BattleSideClosed"] = "battles.BattleSideClosed"
    stream_id: str


@register_event
class BattleEnded(BattleEvent):
    type: Literal["battles.BattleEnded"] = "battles.BattleEnded"
    stream1_id: str
    stream2_id: str
    reason: BattleEnd
    score1: int
    score2: int
    winner_id: str | None  # the winning broadcaster; None on a tie
    winner_stream_id: str | None
    is_tie: bool
    winner_bonus: int  # coins credited to the winner (0 on a tie)
    started_at: datetime
    ended_at: datetime  # when it closed: gifts sent after this did not count


@register_event
class BattleNotified(BattleEvent):
    """A notice for the broadcasters' inboxes (invited, declined, result), on `spaktok.notifications`."""

    type: Literal["battles.BattleNotified"] = "battles.BattleNotified"
    notice: ClassVar[bool] = True
    notification_id: str
    kind: Literal["pk_invited", "pk_declined", "pk_ended"]
    channel_id: str  # the broadcaster the notice is about
    stream_id: str
    title: str
    actor_name: str
    recipients: list[str]
    sent_at: datetime


@register_event
class BattleCommandRejected(BattleEvent):
    type: Literal["battles.CommandRejected"] = "battles.CommandRejected"
    command_type: str
    reason: str
    detail: str
