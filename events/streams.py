"""What happens to a live stream and its audience: lifecycle, viewers, chat, likes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from spaktok.events.base import Event, register_event

Privacy = Literal["public", "followers", "private"]
Quality = Literal["auto", "720p", "1080p"]


class StreamEvent(Event):
    aggregate_type: ClassVar[str] = "stream"


@register_event
class StreamStarted(StreamEvent):
    type: Literal["streams.StreamStarted"] = "streams.StreamStarted"
    stream_id: str
    user_id: str
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
    started_at: datetime
    allowed_user_ids: list[str] = []  # who may watch a private stream besides the staff (issue #15)
    channel_moderators: list[str] = []  # the channel's moderators when it started (issue #18)
    like_shards: int = 0  # likes counted by this many shards (commands/stream_shards.py); 0: here


@register_event
class StreamEnded(StreamEvent):
    type: Literal["streams.StreamEnded"] = "streams.StreamEnded"
    ended_at: datetime
    reason: str
    duration: int
    peak_viewer_count: int
    total_views: int
    likes: int
    comments: int
    gifts: int
    gift_revenue: int


@register_event
class ViewerJoined(StreamEvent):
    type: Literal["streams.ViewerJoined"] = "streams.ViewerJoined"
    user_id: str
    username: str
    user_profile_image: str | None = None
    joined_at: datetime
    viewer_count: int
    peak_viewer_count: int
    total_views: int
    # demographics (added later: defaulted, so events written before still decode as "unknown")
    country: str | None = None  # ISO-3166 alpha-2, from the token's `country` claim
    age_bucket: str | None = None  # from the token's `birthYear`, see AGE_BUCKETS


@register_event
class ViewersRefused(StreamEvent):
    """Viewers of an edge batch of joins (`JoinViewers`) that the stream refused, each with the
    problem slug and detail a lone `JoinStream` would have been refused with. The others joined."""

    type: Literal["streams.ViewersRefused"] = "streams.ViewersRefused"
    refusal: ClassVar[bool] = True
    refused: dict[str, tuple[str, str]]  # user id -> (reason, detail)


@register_event
class ViewerLeft(StreamEvent):
    type: Literal["streams.ViewerLeft"] = "streams.ViewerLeft"
    user_id: str
    left_at: datetime
    watch_time: int  # seconds, accumulated over every visit to this stream
    reason: Literal["left", "stream_ended", "timed_out", "banned"]
    viewer_count: int


@register_event
class HeartbeatsRecorded(StreamEvent):
    """Many viewers' heartbeats folded in one step (edge-batched by the API)."""

    type: Literal["streams.HeartbeatsRecorded"] = "streams.HeartbeatsRecorded"
    beats: dict[str, datetime]  # user id -> latest heartbeat
    count: int  # heartbeats received in the batch, including those of the same user
    viewer_count: int


@register_event
class CommentPosted(StreamEvent):
    type: Literal["streams.CommentPosted"] = "streams.CommentPosted"
    comment_id: str
    user_id: str
    username: str
    user_profile_image: str | None = None
    text: str
    comment_type: Literal["text", "gift", "join", "like", "system"] = "text"
    posted_at: datetime
    comments: int


@register_event
class StreamUpdated(StreamEvent):
    """The broadcaster changed settings of the live stream; `changes` holds only what changed."""

    type: Literal["streams.StreamUpdated"] = "streams.StreamUpdated"
    changes: dict[str, Any]
    updated_at: datetime


ModeratorRole = Literal["broadcaster", "moderator", "channel_moderator", "platform"]


@register_event
class UserBanned(StreamEvent):
    """Refused from now on; their comments since `comments_deleted_since` are hidden."""

    type: Literal["streams.UserBanned"] = "streams.UserBanned"
    user_id: str
    by: str
    role: ModeratorRole
    reason: str | None = None
    banned_at: datetime
    comments_deleted_since: datetime


@register_event
class UserUnbanned(StreamEvent):
    type: Literal["streams.UserUnbanned"] = "streams.UserUnbanned"
    user_id: str
    by: str
    role: ModeratorRole
    unbanned_at: datetime


@register_event
class UserTimedOut(StreamEvent):
    """Muted until `until`: may watch, may not comment. A new timeout replaces the previous one."""

    type: Literal["streams.UserTimedOut"] = "streams.UserTimedOut"
    user_id: str
    by: str
    role: ModeratorRole
    reason: str | None = None
    duration: int  # seconds
    until: datetime
    timed_out_at: datetime


@register_event
class TimeoutLifted(StreamEvent):
    """A moderator ended a user's timeout before its `until`: they may comment again."""

    type: Literal["streams.TimeoutLifted"] = "streams.TimeoutLifted"
    user_id: str
    by: str
    role: ModeratorRole
    lifted_at: datetime


@register_event
class StreamReported(StreamEvent):
    type: Literal["streams.StreamReported"] = "streams.StreamReported"
    reporter_id: str
    reason: str
    reporters_in_window: int  # distinct reporters within the window, this one included
    window_s: int  # older reports no longer count (and are forgotten)
    reported_at: datetime
    report_round: int = 1  # the open report it joins, `<stream id>-<round>` (1 for older events)


@register_event
class StreamFlagged(StreamEvent):
    """Enough distinct reporters: moderationStatus = flagged, the moderation team is told."""

    type: Literal["streams.StreamFlagged"] = "streams.StreamFlagged"
    reporters_in_window: int
    flagged_at: datetime


@register_event
class StreamSuspended(StreamEvent):
    """Too many distinct reporters: the stream is ended with reason `suspended` right after."""

    type: Literal["streams.StreamSuspended"] = "streams.StreamSuspended"
    reporters_in_window: int = 0  # 0 when the platform suspended it, not the reporters' count
    suspended_at: datetime
    # added with platform enforcement (issue #15): defaulted, so automatic suspensions still decode
    reason: str | None = None
    suspended_by: str = "system"  # a platform moderator's user id, or "system" for the report threshold


@register_event
class ReportsResolved(StreamEvent):
    """The platform team closed the open report `report_id` (`<stream id>-<round>`) of this stream.

    The next report of a new reporter opens round `report_round + 1`.
    """

    type: Literal["streams.ReportsResolved"] = "streams.ReportsResolved"
    report_id: str
    report_round: int
    action: Literal["dismiss", "suspend-stream", "suspend-user"]
    note: str | None = None
    resolved_by: str
    reporters: int  # distinct reporters of the round
    resolved_at: datetime


# what a moderation notice tells (commands/stream/moderation.py `notice`)
NoticeKind = Literal[
    "stream_flagged",
    "stream_suspended",
    "banned",
    "unbanned",
    "moderator_added",
    "moderator_removed",
    "guest_invited",
    "guest_removed",
]


@register_event
class ModerationNotified(StreamEvent):
    """A notice for the moderation team or the broadcaster, on `spaktok.notifications`.

    `recipients` holds user ids, or `role:moderation` for everyone with that role.
    """

    type: Literal["streams.ModerationNotified"] = "streams.ModerationNotified"
    notice: ClassVar[bool] = True
    notification_id: str
    kind: NoticeKind
    channel_id: str
    stream_id: str
    title: str
    actor_name: str
    recipients: list[str]
    sent_at: datetime


@register_event
class ModeratorAdded(StreamEvent):
    type: Literal["streams.ModeratorAdded"] = "streams.ModeratorAdded"
    user_id: str
    added_at: datetime


@register_event
class ModeratorRemoved(StreamEvent):
    type: Literal["streams.ModeratorRemoved"] = "streams.ModeratorRemoved"
    user_id: str
    removed_at: datetime


@register_event
class ChannelModeratorsChanged(StreamEvent):
    """The channel's moderators changed while this stream was live: `moderators` is the new set."""

    type: Literal["streams.ChannelModeratorsChanged"] = "streams.ChannelModeratorsChanged"
    moderators: list[str]
    changed_at: datetime


@register_event
class CommentDeleted(StreamEvent):
    """Removed by the broadcaster or a moderator; the moderation audit reads these from the log."""

    type: Literal["streams.CommentDeleted"] = "streams.CommentDeleted"
    comment_id: str
    deleted_by: str
    role: ModeratorRole
    reason: str | None = None
    deleted_at: datetime


@register_event
class CommentPinned(StreamEvent):
    """The broadcaster pinned a comment; the one pinned before, if any, is unpinned by this fact."""

    type: Literal["streams.CommentPinned"] = "streams.CommentPinned"
    comment_id: str
    previous_comment_id: str | None = None
    pinned_by: str
    pinned_at: datetime


@register_event
class CommentUnpinned(StreamEvent):
    """The broadcaster unpinned the pinned comment: nothing is pinned now."""

    type: Literal["streams.CommentUnpinned"] = "streams.CommentUnpinned"
    comment_id: str
    unpinned_by: str
    unpinned_at: datetime


@register_event
class LikesRecorded(StreamEvent):
    """Many users' like taps folded in one step (edge-batched by the API)."""

    type: Literal["streams.LikesRecorded"] = "streams.LikesRecorded"
    likes: dict[str, int]  # user id -> taps in this batch
    count: int  # sum of the batch
    total_likes: int
    recorded_at: datetime
    action_ids: list[str]  # accepted client actions, remembered to refuse retries


@register_event
class ShardLikesFolded(StreamEvent):
    """The like shards' totals folded into the stream's: `count` more likes, `totals` the shards that
    moved (shard -> its running total), `total_likes` the stream's total after the fold."""

    type: Literal["streams.ShardLikesFolded"] = "streams.ShardLikesFolded"
    count: int
    totals: dict[str, int]
    total_likes: int
    folded_at: datetime


@register_event
class StreamCommandRejected(StreamEvent):
    """A stream command that was refused; the reason is a stable problem slug."""

    type: Literal["streams.CommandRejected"] = "streams.CommandRejected"
    command_type: str
    reason: str
    detail: str
    rejected_action_ids: list[str] = []


StreamEventUnion = Annotated[
    StreamStarted
    | StreamEnded
    | ViewerJoined
    | ViewersRefused
    | ViewerLeft
    | HeartbeatsRecorded
    | CommentPosted
    | StreamUpdated
    | UserBanned
    | UserUnbanned
    | TimeoutLifted
    | UserTimedOut
    | StreamReported
    | StreamFlagged
    | StreamSuspended
    | ReportsResolved
    | ModerationNotified
    | ModeratorAdded
    | ModeratorRemoved
    | CommentDeleted
    | CommentPinned
    | CommentUnpinned
    | LikesRecorded
    | ShardLikesFolded
    | StreamCommandRejected,
    Field(discriminator="type"),
]


@register_event
class GiftReceived(StreamEvent):
    """A paid gift delivered to the stream: the spec's `streamGifts` row, with its revenue split.

    `coin_cost` is the whole send (`count` gifts); `broadcaster_share + platform_share == coin_cost`
    under the recorded `revenue_rule`. Combos only label sends: revenue counts each send once.
    """

    type: Literal["streams.GiftReceived"] = "streams.GiftReceived"
    gift_tx: str
    wallet_seq: int
    sender_id: str
    sender_username: str
    sender_profile_image: str | None = None
    receiver_id: str
    receiver_username: str
    gift_id: str
    gift_name: str
    gift_image_url: str
    gift_animation_url: str
    count: int
    coin_cost: int
    real_value_usd: str  # two decimals, at the configured coin value
    broadcaster_share: int
    platform_share: int
    is_premium_broadcaster: bool
    revenue_rule: str
    is_combo: bool
    combo_id: str
    combo_count: int
    sender_total_coins: int  # the sender's coins to this stream so far: the leaderboard's figure
    gifts: int  # the stream's totals after this gift
    gift_revenue: int
    sent_at: datetime


GiftRefusal = Literal[
    "stream-not-live", "gifts-disabled", "user-banned", "stream-not-found", "cannot-gift-self"
]


@register_event
class GiftRefused(StreamEvent):
    """The stream could not take a paid gift; the sender's wallet refunds it (the compensation)."""

    type: Literal["streams.GiftRefused"] = "streams.GiftRefused"
    gift_tx: str
    wallet_seq: int
    sender_id: str
    gift_id: str
    count: int
    coin_cost: int
    reason: GiftRefusal
    refused_at: datetime


@register_event
class GuestInvited(StreamEvent):
    """The broadcaster asked a user on stage (multi-guest); the invitation stands until answered."""

    type: Literal["streams.GuestInvited"] = "streams.GuestInvited"
    user_id: str
    invited_at: datetime


@register_event
class GuestJoined(StreamEvent):
    type: Literal["streams.GuestJoined"] = "streams.GuestJoined"
    user_id: str
    joined_at: datetime
    guests: list[str]  # everyone on stage after this join


@register_event
class GuestRemoved(StreamEvent):
    """Off stage, or an invitation gone: `left` / `declined` by the user, `removed` / `withdrawn` by
    the broadcaster."""

    type: Literal["streams.GuestRemoved"] = "streams.GuestRemoved"
    user_id: str
    by: str
    reason: Literal["left", "declined", "removed", "withdrawn"]
    removed_at: datetime
    guests: list[str]  # everyone on stage after this


@register_event
class BattleLinked(StreamEvent):
    """The stream joined a PK battle: its gifts now also score for its side (events/battles.py)."""

    type: Literal["streams.BattleLinked"] = "streams.BattleLinked"
    battle_id: str
    side: Literal[1, 2]
    opponent_stream_id: str
    opponent_user_id: str
    linked_at: datetime


BattleLinkRefusal = Literal["stream-not-live", "stream-in-battle", "not-stream-owner"]


@register_event
class BattleLinkRefused(StreamEvent):
    """The stream could not join the battle (it has ended, or it is in another battle)."""

    type: Literal["streams.BattleLinkRefused"] = "streams.BattleLinkRefused"
    battle_id: str
    reason: BattleLinkRefusal
    refused_at: datetime


@register_event
class BattleUnlinked(StreamEvent):
    type: Literal["streams.BattleUnlinked"] = "streams.BattleUnlinked"
    battle_id: str
    reason: Literal["battle_over", "stream_ended"]
    unlinked_at: datetime


@register_event
class StreamAnalyticsRecorded(StreamEvent):
    """The spec's 5-minute `streamAnalytics` snapshot (§2.6, §3.6 recordStreamAnalytics), taken by the
    worker's timer from the stream's own state, so it is ordered with the events it sums up."""

    type: Literal["streams.StreamAnalyticsRecorded"] = "streams.StreamAnalyticsRecorded"
    recorded_at: datetime
    viewer_count: int
    peak_viewer_count: int
    total_views: int
    likes: int
    comments: int
    gifts: int
    revenue: int  # coins, the stream's gift revenue so far
    top_gifters: list[dict[str, Any]]  # [{user_id, coins, gifts}], the first ten by coins
    top_viewers: list[dict[str, Any]]  # [{user_id, watch_time}], past visits, the first ten
