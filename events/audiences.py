"""A channel's audience, kept in shards: who follows it, and the notifications sent to them."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from spaktok.events.base import Event, register_event

# what a followers' notice is about: a stream went live, or a scheduled stream was announced, is
# coming up soon (the reminder lead) or is due now
NoticeKind = Literal["stream_started", "schedule_announced", "schedule_reminder", "schedule_due"]


class AudienceEvent(Event):
    aggregate_type: ClassVar[str] = "audience"


@register_event
class FollowerAdded(AudienceEvent):
    type: Literal["audiences.FollowerAdded"] = "audiences.FollowerAdded"
    follower_id: str
    followed_at: datetime


@register_event
class FollowerRemoved(AudienceEvent):
    type: Literal["audiences.FollowerRemoved"] = "audiences.FollowerRemoved"
    follower_id: str


@register_event
class FollowersNotified(AudienceEvent):
    """A notice (not a state change): one batch of recipients of one notification.

    Published on `spaktok.notifications`, the hook for push services. `notification_id` is the same
    for every recipient of one occasion; (recipient, notification_id) is unique.
    """

    type: Literal["audiences.FollowersNotified"] = "audiences.FollowersNotified"
    notice: ClassVar[bool] = True
    notification_id: str
    kind: NoticeKind
    channel_id: str
    stream_id: str | None = None
    schedule_id: str | None = None
    title: str
    actor_name: str
    recipients: list[str]
    sent_at: datetime


@register_event
class AudienceCommandRejected(AudienceEvent):
    type: Literal["audiences.CommandRejected"] = "audiences.CommandRejected"
    command_type: str
    reason: str
    detail: str
