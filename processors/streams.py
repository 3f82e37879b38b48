"""Wiring of the stream aggregate into the worker: follow-ups and which decisions are final."""

from __future__ import annotations

from typing import Any

from spaktok.commands import stream_decide
from spaktok.commands.audiences import AUDIENCE_SHARDS, NotifyFollowers
from spaktok.commands.base import Command, Rejection
from spaktok.commands.battles import BattleGift, CloseBattleSide, RecordBattleLink, ScoreBattle
from spaktok.commands.broadcasters import ReleaseBroadcast
from spaktok.commands.earnings import Credit, CreditEarnings
from spaktok.commands.enforcement import ResolveReports
from spaktok.commands.media import CheckIngest, ExpireRecordings
from spaktok.commands.schedules import MarkScheduleStarted
from spaktok.commands.stream_state import StreamState, evolve, join, split, thaw
from spaktok.commands.streams import (
    DeliverGift,
    FoldShardLikes,
    JoinViewers,
    LinkBattle,
    RecordAnalyticsSnapshot,
    ReleaseViewers,
    SweepViewers,
    SyncChannelModerators,
    TimeOutViewers,
    UnlinkBattle,
)
from spaktok.commands.wallets import RefundGift
from spaktok.events.envelope import derive_id
from spaktok.events.streams import (
    GiftReceived,
    GiftRefused,
    StreamCommandRejected,
    ViewerJoined,
    ViewersRefused,
)
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, follow_up
from spaktok.processors.core import Sealed
from spaktok.processors.enforcement import suspend_owner
from spaktok.processors.stream_shards import tell_shards


def _rejected(command: Command, rejection: Rejection) -> StreamCommandRejected:
    action_ids = [a for a, _, _ in getattr(command, "likes", ())]
    return StreamCommandRejected(
        command_type=command.type,
        reason=rejection.reason,
        detail=rejection.detail,
        rejected_action_ids=action_ids,
    )


def _answers(command: Command, envelopes: list[Sealed]) -> dict[str, Any] | None:
    """Each viewer's answer to an edge batch of joins: joined, or refused and why. A viewer not named
    was watching already. (The viewer count they are told is the outcome's, after the batch.)"""
    if not isinstance(command, JoinViewers):
        return None
    answers: dict[str, Any] = {}
    for sealed in envelopes:
        event = sealed.event
        if isinstance(event, ViewerJoined):
            answers[event.user_id] = {"status": "accepted"}
        elif isinstance(event, ViewersRefused):
            for user, (reason, detail) in event.refused.items():
                answers[user] = {"status": "rejected", "reason": reason, "detail": detail}
    return answers


def _follow_ups(command: Command, envelopes: list[Sealed], state: StreamState) -> list[Forward]:
    return (
        _decided_follow_ups(command, envelopes, state)
        + tell_shards(command, envelopes, state.like_shards)
        + _release_more(command, envelopes, state)
    )


def _release_more(command: Command, envelopes: list[Sealed], state: StreamState) -> list[Forward]:
    """An ended stream that let a part of its viewers go and still holds some asks itself for the
    next part (`ReleaseViewers`, commands/stream/lifecycle.py `ending`)."""
    if state.status != "ended" or not state.audience.viewers:
        return []
    if not any(env.type == "streams.ViewerLeft" for env in envelopes):
        return []  # a decision that let nobody go (the timer's safety net keeps the chain going)
    release = ReleaseViewers(
        **follow_up(command, "release-viewers"), actor_id="system", stream_id=state.stream_id
    )
    return [Forward(topics.COMMANDS_STREAMS.name, release)]


def _decided_follow_ups(command: Command, envelopes: list[Sealed], state: StreamState) -> list[Forward]:
    if isinstance(command, DeliverGift):
        return _settle_gift(command, envelopes, state) + _score_battle(command, envelopes, state)
    if isinstance(command, LinkBattle):
        return [_link_answer(command, envelopes, state)]
    if isinstance(command, ResolveReports) and command.action == "suspend-user":
        return suspend_owner(command, envelopes, state.user_id)
    battle = _battle_closed(command, envelopes)
    started = next((env for env in envelopes if env.type == "streams.StreamStarted"), None)
    if started is not None:
        return _notify_followers(command, started) + _link_schedule(command, started)
    if any(env.type == "streams.StreamEnded" for env in envelopes):
        release = ReleaseBroadcast(
            **follow_up(command, "release-broadcast"),
            actor_id=command.actor_id,
            user_id=state.user_id,
            stream_id=state.stream_id,
        )
        return [*battle, Forward(topics.COMMANDS_BROADCASTERS.name, release)]
    return battle


def _settle_gift(command: DeliverGift, envelopes: list[Sealed], state: StreamState) -> list[Forward]:
    """The saga's last step: credit the broadcaster's share, or refund the sender (compensation)."""
    forwards = []
    for sealed in envelopes:
        event = sealed.event
        if isinstance(event, GiftReceived):
            share = Credit(
                stream_id=state.stream_id,
                stream_sequence=sealed.sequence,
                gift_tx=command.gift_tx,
                sender_id=command.sender_id,
                coins=event.broadcaster_share,
            )
            credit = CreditEarnings(
                **follow_up(command, "credit-earnings"),
                actor_id=command.sender_id,
                broadcaster_id=state.user_id,
                credits=[share],
            )
            forwards.append(Forward(topics.COMMANDS_EARNINGS.name, credit))
        elif isinstance(event, GiftRefused):
            refund = RefundGift(
                **follow_up(command, "refund-gift"),
                actor_id=command.sender_id,
                user_id=command.sender_id,
                gift_tx=command.gift_tx,
                seq=command.wallet_seq,
                stream_id=command.stream_id,
                coins=command.coins,
                reason=event.reason,
            )
            forwards.append(Forward(topics.COMMANDS_WALLETS.name, refund))
    return forwards


def _score_battle(command: DeliverGift, envelopes: list[Sealed], state: StreamState) -> list[Forward]:
    """PK battle: a gift taken while linked goes to the battle, which decides whether it counts."""
    if not state.pk_battle_id:
        return []
    gifts = [
        BattleGift(
            stream_sequence=sealed.sequence,
            gift_tx=command.gift_tx,
            sender_id=command.sender_id,
            coins=sealed.event.coin_cost,
            sent_at=command.issued_at,
        )
        for sealed in envelopes
        if isinstance(sealed.event, GiftReceived)
    ]
    if not gifts:
        return []
    score = ScoreBattle(
        **follow_up(command, "score-battle"),
        actor_id=command.sender_id,
        battle_id=state.pk_battle_id,
        stream_id=state.stream_id,
        gifts=gifts,
    )
    return [Forward(topics.COMMANDS_BATTLES.name, score)]


def _link_answer(command: LinkBattle, envelopes: list[Sealed], state: StreamState) -> Forward:
    """Linked or not, the battle hears it (an unknown stream records nothing, but answers too)."""
    linked = state.pk_battle_id == command.battle_id
    refused = next((env for env in envelopes if env.type == "streams.BattleLinkRefused"), None)
    if linked:
        reason = ""
    elif refused is not None:
        reason = refused.payload["reason"]
    else:
        reason = "stream-left-battle" if command.battle_id in state.pk_left else "stream-not-found"
    answer = RecordBattleLink(
        **follow_up(command, "battle-link"),
        actor_id=command.actor_id,
        battle_id=command.battle_id,
        stream_id=command.stream_id,
        linked=linked,
        reason=reason,
    )
    return Forward(topics.COMMANDS_BATTLES.name, answer)


def _battle_closed(command: Command, envelopes: list[Sealed]) -> list[Forward]:
    """The stream left its battle (asked to, or ending): after every gift it forwarded, it says so.

    Asked to leave a battle it is not in, it says so too, so a battle never waits for it forever.
    """
    unlinked = next((env for env in envelopes if env.type == "streams.BattleUnlinked"), None)
    if unlinked is None and not isinstance(command, UnlinkBattle):
        return []
    battle_id = unlinked.payload["battle_id"] if unlinked else command.battle_id  # type: ignore[attr-defined]
    close = CloseBattleSide(
        **follow_up(command, f"close-battle:{battle_id}"),
        actor_id=command.actor_id,
        battle_id=battle_id,
        stream_id=command.aggregate_id,
        stream_ended=unlinked is not None and unlinked.payload["reason"] == "stream_ended",
    )
    return [Forward(topics.COMMANDS_BATTLES.name, close)]


def _notify_followers(command: Command, started: Sealed) -> list[Forward]:
    """One notify command per audience shard of the broadcaster: the fan-out runs in parallel.

    Followers hear only of a stream they may watch (API.md "Who may see what"): a followers-only
    one they may, being followers; a private one, none of them (its existence is not told)."""
    if started.payload.get("privacy") == "private":
        return []
    channel = started.payload["user_id"]
    notification_id = derive_id(started.event_id, "followers-notified")
    return [
        Forward(
            topics.COMMANDS_AUDIENCES.name,
            NotifyFollowers(
                **follow_up(command, f"notify-followers:{shard}"),
                actor_id=channel,
                channel_id=channel,
                shard=shard,
                notification_id=notification_id,
                stream_id=started.aggregate_id,
                title=started.payload["title"],
                actor_name=started.payload["username"],
            ),
        )
        for shard in range(AUDIENCE_SHARDS)
    ]


def _link_schedule(command: Command, started: Sealed) -> list[Forward]:
    schedule_id = started.payload.get("schedule_id")
    if not schedule_id:
        return []
    mark = MarkScheduleStarted(
        **follow_up(command, "schedule-started"),
        actor_id=started.payload["user_id"],
        schedule_id=schedule_id,
        stream_id=started.aggregate_id,
        broadcaster_id=started.payload["user_id"],
    )
    return [Forward(topics.COMMANDS_SCHEDULES.name, mark)]


MERGED_LISTS = {
    "earnings.CreditEarnings": "credits",
    "battles.ScoreBattle": "gifts",
    "stream_shards.ChangeShardViewers": "changes",  # in order: a user's last change wins
}


def _merge_lists(commands: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch's credits for one broadcaster (gifts for one battle, viewer changes for one shard of a
    hot stream) as one command: the next
    aggregate consumes one message per stream batch instead of one per gift. Its id is derived from
    theirs, so the same batch decided again after a crash merges to the same command."""
    first = commands[0]
    items = MERGED_LISTS[first["type"]]
    return {
        **first,
        "command_id": derive_id(items, *(c["command_id"] for c in commands)),
        items: [item for c in commands for item in c[items]],
    }


def _is_final(command: Command, envelopes: list[Sealed]) -> bool:
    # nobody waits for the answer to the worker's own timers, to a battle's link and unlink, or to the
    # channel moderators a channel forwards (its own command was answered by the channel)
    internal = (
        SweepViewers
        | RecordAnalyticsSnapshot
        | CheckIngest
        | ExpireRecordings
        | LinkBattle
        | UnlinkBattle
        | SyncChannelModerators
        | FoldShardLikes
        | TimeOutViewers
        | ReleaseViewers
    )
    return not isinstance(command, internal)


def _load(data: dict[str, Any]) -> StreamState:
    return StreamState.from_dict(data)


STREAMS = AggregateSpec(
    aggregate_type="stream",
    events_topic=topics.EVENTS_STREAMS.name,
    initial=StreamState,
    load=_load,
    decide=stream_decide.decide,
    evolve=evolve,
    rejected=_rejected,
    follow_ups=_follow_ups,
    is_final=_is_final,
    thaw=thaw,
    is_active=lambda state: state.status == "live",
    split=split,
    join=join,
    is_notice=lambda event: event.notice,
    notice_topic=topics.NOTIFICATIONS.name,
    answers=_answers,
    merge_types=frozenset(MERGED_LISTS),
    merge=_merge_lists,
)
