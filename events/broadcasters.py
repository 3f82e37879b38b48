"""What happens to a broadcaster's channel: the one-active-stream-per-user claim, follows,
enforcement, and the channel's moderators (issue #18)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from spaktok.events.base import Event, register_event


class BroadcasterEvent(Event):
    aggregate_type: ClassVar[str] = "broadcaster"


@register_event
class BroadcastClaimed(BroadcasterEvent):
    type: Literal["broadcasters.BroadcastClaimed"] = "broadcasters.BroadcastClaimed"
    stream_id: str
    claimed_at: datetime


@register_event
class BroadcastReleased(BroadcasterEvent):
    type: Literal["broadcasters.BroadcastReleased"] = "broadcasters.BroadcastReleased"
    stream_id: str
    released_at: datetime


@register_event
class UserFollowed(BroadcasterEvent):
    type: Literal["broadcasters.UserFollowed"] = "broadcasters.UserFollowed"
    followee_id: str
    followed_at: datetime


@register_event
class UserUnfollowed(BroadcasterEvent):
    type: Literal["broadcasters.UserUnfollowed"] = "broadcasters.UserUnfollowed"
    followee_id: str
    unfollowed_at: datetime


@register_event
class AccountSuspended(BroadcasterEvent):
    """The platform team suspended the account: no going live, comments or gifts until reinstated
    or `until` (None: indefinitely). A suspension while live also ends the live stream."""

    type: Literal["broadcasters.AccountSuspended"] = "broadcasters.AccountSuspended"
    reason: str
    until: datetime | None = None
    suspended_by: str
    suspended_at: datetime
    stream_id: str | None = None  # the live stream it ends, if any
    report_id: str | None = None  # the report it resolves, when it came from the reports queue


@register_event
class AccountReinstated(BroadcasterEvent):
    type: Literal["broadcasters.AccountReinstated"] = "broadcasters.AccountReinstated"
    reinstated_by: str
    reinstated_at: datetime


@register_event
class ChannelModeratorAdded(BroadcasterEvent):
    """The broadcaster named a moderator for every stream of the channel, the live one included."""

    type: Literal["broadcasters.ChannelModeratorAdded"] = "broadcasters.ChannelModeratorAdded"
    moderator_id: str
    added_at: datetime


@register_event
class ChannelModeratorRemoved(BroadcasterEvent):
    type: Literal["broadcasters.ChannelModeratorRemoved"] = "broadcasters.ChannelModeratorRemoved"
    moderator_id: str
    removed_at: datetime


@register_event
class BroadcasterCommandRejected(BroadcasterEvent):
    type: Literal["broadcasters.CommandRejected"] = "broadcasters.CommandRejected"
    command_type: str
    reason: str
    detail: str
