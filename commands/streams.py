"""Stream commands: lifecycle, audience, chat and likes of one live stream."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spaktok.commands.access import AllowedUsers
from spaktok.commands.base import Command, register_command
from spaktok.commands.gifts import CatalogGift
from spaktok.commands.stream.state import COMBO_MEMORY_MS, COMMENT_MEMORY_MS
from spaktok.commands.stream_shards import MAX_LIKE_SHARDS
from spaktok.events.streams import Privacy, Quality

MAX_JOIN_BATCH = 500  # viewers in one `JoinViewers` (the API's edge batches hold at most this many)


class StreamCommand(Command):
    aggregate_type: ClassVar[str] = "stream"
    stream_id: str = Field(min_length=1, max_length=64)

    @property
    def aggregate_id(self) -> str:
        return self.stream_id


@register_command
class OpenStream(StreamCommand):
    """Internal: sent by the broadcaster processor once it has claimed the user's single live slot."""

    type: Literal["streams.OpenStream"] = "streams.OpenStream"
    username: str
    user_profile_image: str | None = None
    title: str
    category: str
    tags: list[str] = []
    language: str
    privacy: Privacy
    is_recorded: bool
    allow_comments: bool
    allow_gifts: bool
    is_age_restricted: bool
    is_premium: bool
    quality: Quality
    location: dict[str, float | str | None] | None = None
    schedule_id: str | None = None
    ingest_url: str
    playback_url: str
    allowed_user_ids: AllowedUsers = Field(default_factory=list)
    channel_moderators: list[str] = Field(default_factory=list)  # the channel's, at the claim
    like_shards: int = Field(0, ge=0, le=MAX_LIKE_SHARDS)  # commands/stream_shards.py


@register_command
class SyncChannelModerators(StreamCommand):
    """Internal: the broadcaster's channel moderators changed while this stream is live (the whole
    set: forwards from one broadcaster arrive in order, so the last one wins)."""

    type: Literal["streams.SyncChannelModerators"] = "streams.SyncChannelModerators"
    moderators: list[str] = Field(default_factory=list)


@register_command
class EndStream(StreamCommand):
    type: Literal["streams.EndStream"] = "streams.EndStream"
    reason: str = "ended_by_broadcaster"


class ViewerFacts(BaseModel):
    """What the access policy and the demographics need of a joining viewer, filled in by the API."""

    username: str
    user_profile_image: str | None = None
    age: int | None = None  # from the token's birth year; None when the user did not give it
    follows_broadcaster: bool = False  # from the follows read model, for followers-only streams
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")  # from the token, for demographics
    platform_moderator: bool = False  # roles admin/moderation: may join a private stream


@register_command
class JoinStream(ViewerFacts, StreamCommand):
    type: Literal["streams.JoinStream"] = "streams.JoinStream"


class ArrivingViewer(ViewerFacts):
    """One viewer's join inside an edge batch: a `JoinStream` without the command around it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str = Field(min_length=1, max_length=128)


@register_command
class JoinViewers(StreamCommand):
    """Edge batch: joins of many viewers of one stream in one message (actor = 'edge'). Each is
    decided as its own `JoinStream` would have been, in order; the outcome answers each by user."""

    type: Literal["streams.JoinViewers"] = "streams.JoinViewers"
    viewers: list[ArrivingViewer] = Field(min_length=1, max_length=MAX_JOIN_BATCH)


@register_command
class LeaveStream(StreamCommand):
    type: Literal["streams.LeaveStream"] = "streams.LeaveStream"


@register_command
class RecordHeartbeats(StreamCommand):
    """Edge batch: heartbeats of many viewers of one stream in one message (actor = 'edge')."""

    type: Literal["streams.RecordHeartbeats"] = "streams.RecordHeartbeats"
    beats: list[tuple[str, int]] = Field(min_length=1)  # (user id, epoch millis)


@register_command
class SweepViewers(StreamCommand):
    """Internal, from the worker's timer: drop viewers silent for longer than `silent_ms`.

    The decision uses the command's `issued_at` as "now", so it is the same on every replay.
    """

    type: Literal["streams.SweepViewers"] = "streams.SweepViewers"
    silent_ms: int = Field(ge=1000)
    broadcaster_grace_ms: int = Field(0, ge=0)  # 0: never end a stream for a silent broadcaster


@register_command
class ReleaseViewers(StreamCommand):
    """Internal: an ended stream lets the next part of its audience go (`ViewerLeft(stream_ended)`).

    A stream of more than `LEAVES_PER_DECISION` viewers ends at once and lets its viewers go that
    many per decision (commands/stream/lifecycle.py `ending`); the stream sends itself this command
    while any are left, and the worker's timer sends it too, in case a forward was lost.
    """

    type: Literal["streams.ReleaseViewers"] = "streams.ReleaseViewers"


@register_command
class FoldShardLikes(StreamCommand):
    """Internal, from the like shards: each shard's running like total (by shard number). The totals
    only grow, so a fold that arrives twice or late changes nothing (the stream keeps the highest)."""

    type: Literal["streams.FoldShardLikes"] = "streams.FoldShardLikes"
    totals: dict[str, int] = Field(min_length=1)


@register_command
class TimeOutViewers(StreamCommand):
    """Internal, from a hot stream's shards: viewers their sweeps found silent, each visit as
    `[joined epoch ms, last seen epoch ms]`. A visit the stream no longer has (the viewer left, or
    left and joined again since) changes nothing, so a late or repeated forward is harmless."""

    type: Literal["streams.TimeOutViewers"] = "streams.TimeOutViewers"
    visits: dict[str, tuple[int, int]] = Field(min_length=1)


@register_command
class SendComment(StreamCommand):
    type: Literal["streams.SendComment"] = "streams.SendComment"
    username: str
    user_profile_image: str | None = None
    text: str = Field(max_length=2000)
    max_length: int = 500
    min_interval_ms: int = Field(2000, ge=0, le=COMMENT_MEMORY_MS)  # slow mode; longer is not remembered

    @field_validator("text")
    @classmethod
    def _strip(cls, text: str) -> str:
        return text.strip()


@register_command
class UpdateStream(StreamCommand):
    """Owner's changes; None means "leave as is". `slow_mode_seconds` 0 turns slow mode off."""

    type: Literal["streams.UpdateStream"] = "streams.UpdateStream"
    title: str | None = Field(None, min_length=1, max_length=200)
    category: str | None = Field(None, min_length=1, max_length=64)
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = Field(None, max_length=20)
    allow_comments: bool | None = None
    allow_gifts: bool | None = None
    privacy: Privacy | None = None
    slow_mode_seconds: int | None = Field(None, ge=0, le=COMMENT_MEMORY_MS // 1000)
    allowed_user_ids: AllowedUsers | None = None  # replaces the whole list


@register_command
class DeleteComment(StreamCommand):
    """`platform_moderator`: the caller holds the platform's moderation or admin role (from the token)."""

    type: Literal["streams.DeleteComment"] = "streams.DeleteComment"
    comment_id: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(None, max_length=500)
    platform_moderator: bool = False


MAX_TIMEOUT_S = 14 * 24 * 3600  # like the major platforms: 1 s to 14 days


class ModerationCommand(StreamCommand):
    """`platform_moderator`: the caller holds the platform's moderation or admin role (from the token)."""

    target_user_id: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(None, max_length=500)
    platform_moderator: bool = False


@register_command
class BanUser(ModerationCommand):
    type: Literal["streams.BanUser"] = "streams.BanUser"
    delete_comments_window_s: int = Field(300, ge=0, le=24 * 3600)


@register_command
class UnbanUser(ModerationCommand):
    type: Literal["streams.UnbanUser"] = "streams.UnbanUser"


@register_command
class TimeoutUser(ModerationCommand):
    type: Literal["streams.TimeoutUser"] = "streams.TimeoutUser"
    duration_s: int = Field(ge=1, le=MAX_TIMEOUT_S)


@register_command
class LiftTimeout(ModerationCommand):
    """Ends a user's timeout before its time (spec §3.3); nothing to lift: no event."""

    type: Literal["streams.LiftTimeout"] = "streams.LiftTimeout"


@register_command
class ReportStream(StreamCommand):
    """The thresholds travel with the command (from settings), so the decision replays the same."""

    type: Literal["streams.ReportStream"] = "streams.ReportStream"
    reason: str = Field(min_length=1, max_length=500)
    flag_at: int = Field(ge=1)
    suspend_at: int = Field(ge=1)
    window_s: int = Field(ge=1)


@register_command
class AddModerator(StreamCommand):
    type: Literal["streams.AddModerator"] = "streams.AddModerator"
    target_user_id: str = Field(min_length=1, max_length=128)


@register_command
class RemoveModerator(StreamCommand):
    type: Literal["streams.RemoveModerator"] = "streams.RemoveModerator"
    target_user_id: str = Field(min_length=1, max_length=128)


@register_command
class PinComment(StreamCommand):
    type: Literal["streams.PinComment"] = "streams.PinComment"
    comment_id: str = Field(min_length=1, max_length=64)


@register_command
class UnpinComment(StreamCommand):
    """Unpins the pinned comment; a comment that is not the pinned one: no event."""

    type: Literal["streams.UnpinComment"] = "streams.UnpinComment"
    comment_id: str = Field(min_length=1, max_length=64)


class LikeAction(Command):
    """One client's like request inside an edge batch."""

    type: Literal["streams.LikeAction"] = "streams.LikeAction"
    user_id: str
    count: int = Field(ge=1, le=1000)


@register_command
class RecordLikes(StreamCommand):
    """Edge batch: like taps of many users on one stream in one message (actor = 'edge')."""

    type: Literal["streams.RecordLikes"] = "streams.RecordLikes"
    likes: list[tuple[str, str, int]] = Field(min_length=1)  # (action id, user id, taps)


@register_command
class DeliverGift(StreamCommand):
    """Internal, the saga's second step: the sender's wallet paid for this gift; may the stream take it?"""

    type: Literal["streams.DeliverGift"] = "streams.DeliverGift"
    sender_id: str
    sender_name: str
    sender_profile_image: str | None = None
    gift_tx: str
    wallet_seq: int = Field(gt=0)
    gift: CatalogGift
    count: int = Field(ge=1)
    coins: int = Field(gt=0)
    coin_value_usd: str
    combo_window_ms: int = Field(ge=0, le=COMBO_MEMORY_MS)


@register_command
class InviteGuest(StreamCommand):
    """Multi-guest: the broadcaster asks `target_user_id` on stage; `max_guests` from settings."""

    type: Literal["streams.InviteGuest"] = "streams.InviteGuest"
    target_user_id: str = Field(min_length=1, max_length=128)
    max_guests: int = Field(ge=1, le=20)


@register_command
class AcceptGuest(StreamCommand):
    """The invited user (the actor) goes on stage."""

    type: Literal["streams.AcceptGuest"] = "streams.AcceptGuest"


@register_command
class RemoveGuest(StreamCommand):
    """Off stage or invitation gone: the broadcaster removes, or the user leaves / declines."""

    type: Literal["streams.RemoveGuest"] = "streams.RemoveGuest"
    target_user_id: str = Field(min_length=1, max_length=128)


@register_command
class LinkBattle(StreamCommand):
    """Internal, from an accepted PK battle: join it if live, owned by `broadcaster_id` and free."""

    type: Literal["streams.LinkBattle"] = "streams.LinkBattle"
    battle_id: str
    broadcaster_id: str
    side: Literal[1, 2]
    opponent_stream_id: str
    opponent_user_id: str


@register_command
class UnlinkBattle(StreamCommand):
    """Internal, from a PK battle that is over (or cancelled): leave it."""

    type: Literal["streams.UnlinkBattle"] = "streams.UnlinkBattle"
    battle_id: str


@register_command
class RecordAnalyticsSnapshot(StreamCommand):
    """Internal, from the worker's timer every `SPAKTOK_ANALYTICS_SNAPSHOT_S`: snapshot a live stream."""

    type: Literal["streams.RecordAnalyticsSnapshot"] = "streams.RecordAnalyticsSnapshot"
