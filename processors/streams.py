"""Wiring of the stream aggregate into the worker: follow-ups and which decisions are final."""

from __future__ import annotations

from typing import Any

from spaktok.commands import stream_decide
from spaktok.commands.audiences import AUDIENCE_SHARDS, NotifyFollowers
from spaktok.commands.base import Command, Rejection
from spaktok.commands.broadcasters import ReleaseBroadcast
from spaktok.commands.earnings import Credit, CreditEarnings
from spaktok.commands.schedules import MarkScheduleStarted
from spaktok.commands.stream_state import StreamState, evolve, join, split, thaw
from spaktok.commands.streams import DeliverGift, RecordAnalyticsSnapshot, SweepViewers
from spaktok.commands.wallets import RefundGift
from spaktok.events.envelope import Envelope, derive_id
from spaktok.events.streams import StreamCommandRejected
from spaktok.infra import topics
from spaktok.processors.aggregate import AggregateSpec, Forward, forward_id


def _rejected(command: Command, rejection: Rejection) -> StreamCommandRejected:
    action_ids = [a for a, _, _ in getattr(command, "likes", ())]
    return StreamCommandRejected(
        command_type=command.type,
        reason=rejection.reason,
        detail=rejection.detail,
        rejected_action_ids=action_ids,
    )


def _follow_ups(command: Command, envelopes: list[Envelope], state: StreamState) -> list[Forward]:
    if isinstance(command, DeliverGift):
        return _settle_gift(command, envelopes, state)
    started = next((env for env in envelopes if env.type == "streams.StreamStarted"), None)
    if started is not None:
        return _notify_followers(command, started) + _link_schedule(command, started)
    if any(env.type == "streams.StreamEnded" for env in envelopes):
        release = ReleaseBroadcast(
            command_id=forward_id(command, "release-broadcast"),
            correlation_id=command.correlation,
            issued_at=command.issued_at,
            actor_id=command.actor_id,
            user_id=state.user_id,
            stream_id=state.stream_id,
        )
        return [Forward(topics.COMMANDS_BROADCASTERS.name, release)]
    return []


def _settle_gift(command: DeliverGift, envelopes: list[Envelope], state: StreamState) -> list[Forward]:
    """The saga's last step: credit the broadcaster's share, or refund the sender (compensation)."""
    forwards = []
    for env in envelopes:
        if env.type == "streams.GiftReceived":
            share = Credit(
                stream_id=state.stream_id,
                stream_sequence=env.sequence,
                gift_tx=command.gift_tx,
                sender_id=command.sender_id,
                coins=env.payload["broadcaster_share"],
            )
            credit = CreditEarnings(
                command_id=forward_id(command, "credit-earnings"),
                correlation_id=command.correlation,
                issued_at=command.issued_at,
                actor_id=command.sender_id,
                broadcaster_id=state.user_id,
                credits=[share],
            )
            forwards.append(Forward(topics.COMMANDS_EARNINGS.name, credit))
        elif env.type == "streams.GiftRefused":
            refund = RefundGift(
                command_id=forward_id(command, "refund-gift"),
                correlation_id=command.correlation,
                issued_at=command.issued_at,
                actor_id=command.sender_id,
                user_id=command.sender_id,
                gift_tx=command.gift_tx,
                seq=command.wallet_seq,
                stream_id=command.stream_id,
                coins=command.coins,
                reason=env.payload["reason"],
            )
            forwards.append(Forward(topics.COMMANDS_WALLETS.name, refund))
    return forwards


def _notify_followers(command: Command, started: Envelope) -> list[Forward]:
    """One notify command per audience shard of the broadcaster: the fan-out runs in parallel."""
    channel = started.payload["user_id"]
    notification_id = derive_id(started.event_id, "followers-notified")
    return [
        Forward(
            topics.COMMANDS_AUDIENCES.name,
            NotifyFollowers(
                command_id=forward_id(command, f"notify-followers:{shard}"),
                correlation_id=command.correlation,
                issued_at=command.issued_at,
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


def _link_schedule(command: Command, started: Envelope) -> list[Forward]:
    schedule_id = started.payload.get("schedule_id")
    if not schedule_id:
        return []
    mark = MarkScheduleStarted(
        command_id=forward_id(command, "schedule-started"),
        correlation_id=command.correlation,
        issued_at=command.issued_at,
        actor_id=started.payload["user_id"],
        schedule_id=schedule_id,
        stream_id=started.aggregate_id,
        broadcaster_id=started.payload["user_id"],
    )
    return [Forward(topics.COMMANDS_SCHEDULES.name, mark)]


def _merge_credits(commands: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch's credits for one broadcaster as one command: the earnings aggregate consumes one
    message per stream batch instead of one per gift. Its id is derived from theirs, so the same
    batch decided again after a crash merges to the same command."""
    first = commands[0]
    return {
        **first,
        "command_id": derive_id("credits", *(c["command_id"] for c in commands)),
        "credits": [credit for c in commands for credit in c["credits"]],
    }


def _is_final(command: Command, envelopes: list[Envelope]) -> bool:
    # nobody waits for the answer to the worker's own sweeps and snapshots
    return not isinstance(command, SweepViewers | RecordAnalyticsSnapshot)


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
    merge_types=frozenset({"earnings.CreditEarnings"}),
    merge=_merge_credits,
)
