"""Commands on a user's channel: the single live-stream slot, the channels the user follows, and the
channel's moderators."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from spaktok.commands.access import AllowedUsers
from spaktok.commands.base import Command, register_command
from spaktok.commands.stream_shards import MAX_LIKE_SHARDS
from spaktok.events.streams import Privacy, Quality


class BroadcasterCommand(Command):
    aggregate_type: ClassVar[str] = "broadcaster"
    user_id: str = Field(min_length=1, max_length=128)

    @property
    def aggregate_id(self) -> str:
        return self.user_id


@register_command
class StartStream(BroadcasterCommand):
    """Client intent to go live; routed to the broadcaster first (one active stream per user)."""

    type: Literal["broadcasters.StartStream"] = "broadcasters.StartStream"
    stream_id: str = Field(min_length=1, max_length=64)
    username: str
    user_profile_image: str | None = None
    title: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=20)
    language: str = Field(default="en", min_length=2, max_length=16)
    privacy: Privacy = "public"
    is_recorded: bool = False
    allow_comments: bool = True
    allow_gifts: bool = True
    is_age_restricted: bool = False
    is_premium: bool = False
    quality: Quality = "auto"
    location: dict[str, float | str | None] | None = None
    schedule_id: str | None = None
    ingest_url: str
    playback_url: str
    allowed_user_ids: AllowedUsers = Field(default_factory=list)
    # likes counted by this many shards (0: by the stream itself); commands/stream_shards.py
    like_shards: int = Field(0, ge=0, le=MAX_LIKE_SHARDS)
    # the permission to go live (issue #18): the broadcaster's youngest possible age from the token
    # (None: unknown) and the platform's minimum from settings (0: none); the channel decides
    broadcaster_age: int | None = Field(None, ge=0, le=200)
    streaming_min_age: int = Field(0, ge=0, le=99)


@register_command
class ReleaseBroadcast(BroadcasterCommand):
    """Internal: the stream ended, so its broadcaster may go live again."""

    type: Literal["broadcasters.ReleaseBroadcast"] = "broadcasters.ReleaseBroadcast"
    stream_id: str


@register_command
class FollowUser(BroadcasterCommand):
    """`user_id` (the aggregate) is the follower; the followee's audience learns of it by a forward."""

    type: Literal["broadcasters.FollowUser"] = "broadcasters.FollowUser"
    followee_id: str = Field(min_length=1, max_length=128)


@register_command
class UnfollowUser(BroadcasterCommand):
    type: Literal["broadcasters.UnfollowUser"] = "broadcasters.UnfollowUser"
    followee_id: str = Field(min_length=1, max_length=128)


@register_command
class AddChannelModerator(BroadcasterCommand):
    """`user_id` (the aggregate) is the broadcaster; the moderator moderates all of its streams."""

    type: Literal["broadcasters.AddChannelModerator"] = "broadcasters.AddChannelModerator"
    moderator_id: str = Field(min_length=1, max_length=128)


@register_command
class RemoveChannelModerator(BroadcasterCommand):
    type: Literal["broadcasters.RemoveChannelModerator"] = "broadcasters.RemoveChannelModerator"
    moderator_id: str = Field(min_length=1, max_length=128)
