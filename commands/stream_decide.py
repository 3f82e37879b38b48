"""The stream decider: which events each stream command yields, given the stream's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from spaktok.commands.base import Command, Rejection
from spaktok.commands.enforcement_decide import ENFORCEMENT_COMMANDS, decide_enforcement
from spaktok.commands.gifts import REVENUE_RULE, split_revenue, usd
from spaktok.commands.media_decide import MEDIA_COMMANDS, decide_media
from spaktok.commands.stream_analytics import age_bucket, record_snapshot
from spaktok.commands.stream_state import StreamState, millis
from spaktok.commands.streams import (
    AcceptGuest,
    AddModerator,
    BanUser,
    DeleteComment,
    DeliverGift,
    EndStream,
    InviteGuest,
    JoinStream,
    LeaveStream,
    LinkBattle,
    ModerationCommand,
    OpenStream,
    PinComment,
    RecordAnalyticsSnapshot,
    RecordHeartbeats,
    RecordLikes,
    RemoveGuest,
    RemoveModerator,
    ReportStream,
    SendComment,
    SweepViewers,
    TimeoutUser,
    UnbanUser,
    UnlinkBattle,
    UpdateStream,
)
from spaktok.events.base import Event
from spaktok.events.envelope import derive_id
from spaktok.events.streams import (
    BattleLinked,
    BattleLinkRefusal,
    BattleLinkRefused,
    BattleUnlinked,
    CommentDeleted,
    CommentPinned,
    CommentPosted,
    GiftReceived,
    GiftRefusal,
    GiftRefused,
    GuestInvited,
    GuestJoined,
    GuestRemoved,
    HeartbeatsRecorded,
    LikesRecorded,
    ModerationNotified,
    ModeratorAdded,
    ModeratorRemoved,
    ModeratorRole,
    StreamEnded,
    StreamFlagged,
    StreamReported,
    StreamStarted,
    StreamSuspended,
    StreamUpdated,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
    ViewerJoined,
    ViewerLeft,
)


def decide(command: Command, state: StreamState) -> list[Event]:
    """Events for `command`; raises `Rejection` with a problem slug when it is refused."""
    match command:
        case OpenStream():
            return _open(command, state)
        case EndStream():
            return _end(command, state)
        case JoinStream():
            return _join(command, state)
        case LeaveStream():
            return _leave(command, state)
        case RecordHeartbeats():
            return _heartbeats(command, state)
        case SendComment():
            return _comment(command, state)
        case RecordLikes():
            return _likes(command, state)
        case SweepViewers():
            return _sweep(command, state)
        case UpdateStream():
            return _update(command, state)
        case BanUser():
            return _ban(command, state)
        case UnbanUser():
            return _unban(command, state)
        case TimeoutUser():
            return _timeout(command, state)
        case ReportStream():
            return _report(command, state)
        case AddModerator() | RemoveModerator():
            return _moderators(command, state)
        case DeleteComment():
            return _delete_comment(command, state)
        case PinComment():
            return _pin_comment(command, state)
        case DeliverGift():
            return _deliver_gift(command, state)
        case InviteGuest():
            return _invite_guest(command, state)
        case AcceptGuest():
            return _accept_guest(command, state)
        case RemoveGuest():
            return _remove_guest(command, state)
        case LinkBattle():
            return _link_battle(command, state)
        case UnlinkBattle():
            return _unlink_battle(command, state)
        case _ if isinstance(command, MEDIA_COMMANDS):
            return decide_media(command, state)
        case _ if isinstance(command, ENFORCEMENT_COMMANDS):
            return decide_enforcement(command, state)
        case RecordAnalyticsSnapshot():
            return record_snapshot(command, state)
    raise Rejection("unsupported-command", f"the stream aggregate does not handle {command.type}")


def _require_live(state: StreamState) -> None:
    if state.status == "none":
        raise Rejection("stream-not-found", "no stream with this id")
    if state.status != "live":
        raise Rejection("stream-not-live", "the stream has ended")


def _open(command: OpenStream, state: StreamState) -> list[Event]:
    if state.status != "none":
        raise Rejection("stream-exists", "a stream with this id was already started")
    fields = command.model_dump(exclude={"type", "command_id", "correlation_id", "issued_at", "actor_id"})
    return [StreamStarted(**fields, user_id=command.actor_id, started_at=command.issued_at)]


def _end(command: EndStream, state: StreamState) -> list[Event]:
    _require_live(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster can end this stream")
    return ending(state, command.issued_at, command.reason)


def _leaving(
    state: StreamState,
    user_id: str,
    left_at: datetime,
    reason: Literal["left", "stream_ended", "timed_out", "banned"],
    viewer_count: int,
    last_seen_ms: int | None = None,
) -> ViewerLeft:
    """A viewer's departure: past visits' watch time plus this visit's, from joining to leaving
    (or to `last_seen_ms`, their last sign of life, when they are timed out)."""
    end_ms = millis(left_at) if last_seen_ms is None else last_seen_ms
    visit = max(0, end_ms - state.viewers[user_id][0]) // 1000
    return ViewerLeft(
        user_id=user_id,
        left_at=left_at,
        watch_time=state.watch_time.get(user_id, 0) + visit,
        reason=reason,
        viewer_count=viewer_count,
    )


def ending(state: StreamState, now: datetime, reason: str) -> list[Event]:
    """Every viewer leaves with their watch time, then the final statistics are frozen."""
    now_ms = millis(now)
    events: list[Event] = [
        _leaving(state, user_id, now, "stream_ended", 0) for user_id in sorted(state.viewers)
    ]
    if state.pk_battle_id:  # a battle cannot go on without this side: it closes, with the scores so far
        events.append(BattleUnlinked(battle_id=state.pk_battle_id, reason="stream_ended", unlinked_at=now))
    events.append(
        StreamEnded(
            ended_at=now,
            reason=reason,
            duration=max(0, now_ms - state.started_ms) // 1000,
            peak_viewer_count=state.peak_viewer_count,
            total_views=state.total_views,
            likes=state.likes,
            comments=state.comments,
            gifts=state.gifts,
            gift_revenue=state.gift_revenue,
        )
    )
    return events


ADULT_AGE = 18


def _join(command: JoinStream, state: StreamState) -> list[Event]:
    _require_live(state)
    if command.actor_id in state.viewers:
        return []  # already watching: joining again changes nothing
    _admit_viewer(command, state)
    viewer_count = state.viewer_count + 1
    new_viewer = command.actor_id not in state.watch_time
    return [
        ViewerJoined(
            user_id=command.actor_id,
            username=command.username,
            user_profile_image=command.user_profile_image,
            joined_at=command.issued_at,
            viewer_count=viewer_count,
            peak_viewer_count=max(state.peak_viewer_count, viewer_count),
            total_views=state.total_views + (1 if new_viewer else 0),
            country=command.country,
            age_bucket=age_bucket(command.age),
        )
    ]


def _admit_viewer(command: JoinStream, state: StreamState) -> None:
    """The access policy's rules for watching (api/access.py), in its order: the owner and platform
    staff pass; a private stream admits its moderators, guests and allowed users only; moderators and
    guests pass; then bans, followers-only and age apply."""
    actor = command.actor_id
    trusted = command.platform_moderator or actor == state.user_id
    crew = actor in state.moderators or actor in state.guests
    if state.privacy == "private" and not (trusted or crew or actor in state.allowed_user_ids):
        raise Rejection("private-stream", "this stream is private")
    if trusted or crew:
        return
    if actor in state.banned:
        raise Rejection("user-banned", "you are banned from this stream")
    if state.privacy == "followers" and not command.follows_broadcaster:
        raise Rejection("followers-only", "follow the broadcaster to watch this stream")
    if state.is_age_restricted and (command.age is None or command.age < ADULT_AGE):
        raise Rejection("age-restricted", f"this stream is for viewers aged {ADULT_AGE} or over")


def _leave(command: LeaveStream, state: StreamState) -> list[Event]:
    if state.status == "none":
        raise Rejection("stream-not-found", "no stream with this id")
    if command.actor_id not in state.viewers:
        raise Rejection("not-watching", "you are not watching this stream")
    return [_leaving(state, command.actor_id, command.issued_at, "left", state.viewer_count - 1)]


def _heartbeats(command: RecordHeartbeats, state: StreamState) -> list[Event]:
    _require_live(state)
    beats: dict[str, datetime] = {}
    for user_id, at_ms in command.beats:
        if user_id in state.viewers or user_id == state.user_id:  # the broadcaster's app beats too
            latest = max(at_ms, int(beats[user_id].timestamp() * 1000)) if user_id in beats else at_ms
            beats[user_id] = datetime.fromtimestamp(latest / 1000, UTC)
    if not beats:
        raise Rejection("not-watching", "none of these users is watching this stream")
    return [HeartbeatsRecorded(beats=beats, count=len(command.beats), viewer_count=state.viewer_count)]


def _comment(command: SendComment, state: StreamState) -> list[Event]:
    _require_live(state)
    if not state.allow_comments:
        raise Rejection("comments-disabled", "the broadcaster has turned comments off")
    if command.actor_id in state.banned:
        raise Rejection("user-banned", "you are banned from this stream")
    muted_until = state.muted_until.get(command.actor_id, 0)
    if millis(command.issued_at) < muted_until:
        left = (muted_until - millis(command.issued_at) + 999) // 1000
        raise Rejection("timed-out", f"you are timed out for another {left} s")
    if not command.text:
        raise Rejection("invalid-comment", "a comment cannot be empty")
    if len(command.text) > command.max_length:
        raise Rejection("invalid-comment", f"a comment is at most {command.max_length} characters")
    last = state.last_comment_ms.get(command.actor_id)
    now_ms = millis(command.issued_at)
    interval = max(command.min_interval_ms, state.slow_mode_ms)  # the stream's slow mode only slows
    if last is not None and now_ms - last < interval:
        raise Rejection("rate-limited", f"one comment per {interval / 1000:g} s")
    return [
        CommentPosted(
            comment_id=derive_id(command.command_id, "comment"),
            user_id=command.actor_id,
            username=command.username,
            user_profile_image=command.user_profile_image,
            text=command.text,
            posted_at=command.issued_at,
            comments=state.comments + 1,
        )
    ]


def _likes(command: RecordLikes, state: StreamState) -> list[Event]:
    _require_live(state)
    seen = set()
    likes: dict[str, int] = {}
    action_ids: list[str] = []
    for action_id, user_id, taps in command.likes:
        if action_id in seen or action_id in state.recent_like_ids or taps < 1 or user_id in state.banned:
            continue  # a client retry of a like already counted
        seen.add(action_id)
        action_ids.append(action_id)
        likes[user_id] = likes.get(user_id, 0) + taps
    if not likes:
        return []
    count = sum(likes.values())
    return [
        LikesRecorded(
            likes=likes,
            count=count,
            total_likes=state.likes + count,
            recorded_at=command.issued_at,
            action_ids=action_ids,
        )
    ]


def _sweep(command: SweepViewers, state: StreamState) -> list[Event]:
    """Viewers not heard from (join or heartbeat) for longer than `silent_ms` leave, oldest first;
    a stream whose broadcaster was not heard from for `broadcaster_grace_ms` ends.

    Their watch time for this visit runs to their last sign of life, not to the sweep.
    """
    if state.status != "live":
        return []
    now_ms = millis(command.issued_at)
    # video arriving from the media server is the broadcaster's sign of life too
    owner_seen = now_ms if state.ingest == "live" else max(state.owner_seen_ms, state.started_ms)
    if command.broadcaster_grace_ms and now_ms - owner_seen > command.broadcaster_grace_ms:
        return ending(state, command.issued_at, "broadcaster_lost")
    silent = sorted(
        (last_seen, user_id)
        for user_id, (_, last_seen) in state.viewers.items()
        if now_ms - last_seen > command.silent_ms
    )
    count = state.viewer_count
    events: list[Event] = []
    for last_seen, user_id in silent:
        count -= 1
        events.append(_leaving(state, user_id, command.issued_at, "timed_out", count, last_seen_ms=last_seen))
    return events


def _delete_comment(command: DeleteComment, state: StreamState) -> list[Event]:
    """The broadcaster, one of the stream's moderators, or the platform's moderation team.

    Whether the comment exists is checked by the API against the read model: the stream keeps no
    list of its comments (a long stream has hundreds of thousands).
    """
    role = _moderator_role(command, state)
    return [
        CommentDeleted(
            comment_id=command.comment_id,
            deleted_by=command.actor_id,
            role=role,
            reason=command.reason,
            deleted_at=command.issued_at,
        )
    ]


def _pin_comment(command: PinComment, state: StreamState) -> list[Event]:
    _require_live(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster can pin comments")
    if command.comment_id == state.pinned_comment_id:
        return []  # pinned already
    return [
        CommentPinned(
            comment_id=command.comment_id,
            previous_comment_id=state.pinned_comment_id or None,
            pinned_by=command.actor_id,
            pinned_at=command.issued_at,
        )
    ]


UPDATABLE = (
    "title",
    "category",
    "tags",
    "allow_comments",
    "allow_gifts",
    "privacy",
    "slow_mode_seconds",
    "allowed_user_ids",
)


def _update(command: UpdateStream, state: StreamState) -> list[Event]:
    _require_live(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster can change the stream")
    changes = {name: getattr(command, name) for name in UPDATABLE if getattr(command, name) is not None}
    if "slow_mode_seconds" in changes and changes["slow_mode_seconds"] * 1000 == state.slow_mode_ms:
        del changes["slow_mode_seconds"]
    for name, current in (("allow_comments", state.allow_comments), ("privacy", state.privacy)):
        if changes.get(name) == current:
            del changes[name]
    if "allowed_user_ids" in changes and tuple(changes["allowed_user_ids"]) == state.allowed_user_ids:
        del changes["allowed_user_ids"]
    if not changes:
        return []
    return [StreamUpdated(changes=changes, updated_at=command.issued_at)]


def _moderator_role(command: ModerationCommand | DeleteComment, state: StreamState) -> ModeratorRole:
    if state.status == "none":
        raise Rejection("stream-not-found", "no stream with this id")
    if command.actor_id == state.user_id:
        return "broadcaster"
    if command.actor_id in state.moderators:
        return "moderator"
    if command.platform_moderator:
        return "platform"
    raise Rejection("not-moderator", "only the broadcaster or a moderator can do this")


def _target(command: ModerationCommand, state: StreamState) -> str:
    if command.target_user_id == state.user_id:
        raise Rejection("cannot-moderate-broadcaster", "the broadcaster cannot be banned or muted")
    return command.target_user_id


def _ban(command: BanUser, state: StreamState) -> list[Event]:
    role = _moderator_role(command, state)
    target = _target(command, state)
    if target in state.banned:
        return []
    now = command.issued_at
    events: list[Event] = [
        UserBanned(
            user_id=target,
            by=command.actor_id,
            role=role,
            reason=command.reason,
            banned_at=now,
            comments_deleted_since=now - timedelta(seconds=command.delete_comments_window_s),
        )
    ]
    events.append(_moderation_notice(command, state, "banned", [target]))
    if target in state.viewers:  # watching: removed at once, with the watch time of this visit
        events.append(_leaving(state, target, now, "banned", state.viewer_count - 1))
    return events


def _unban(command: UnbanUser, state: StreamState) -> list[Event]:
    role = _moderator_role(command, state)
    if command.target_user_id not in state.banned:
        return []
    target = command.target_user_id
    return [
        UserUnbanned(user_id=target, by=command.actor_id, role=role, unbanned_at=command.issued_at),
        _moderation_notice(command, state, "unbanned", [target]),
    ]


def _timeout(command: TimeoutUser, state: StreamState) -> list[Event]:
    """A new timeout replaces the old one (longer or shorter); it ends by itself at `until`."""
    role = _moderator_role(command, state)
    target = _target(command, state)
    if target in state.banned:
        raise Rejection("user-banned", "the user is banned already")
    return [
        UserTimedOut(
            user_id=target,
            by=command.actor_id,
            role=role,
            reason=command.reason,
            duration=command.duration_s,
            until=command.issued_at + timedelta(seconds=command.duration_s),
            timed_out_at=command.issued_at,
        )
    ]


def _moderators(command: AddModerator | RemoveModerator, state: StreamState) -> list[Event]:
    if state.status == "none":
        raise Rejection("stream-not-found", "no stream with this id")
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster names moderators")
    target, present = command.target_user_id, command.target_user_id in state.moderators
    if isinstance(command, AddModerator):
        if present or target == state.user_id:
            return []
        added = ModeratorAdded(user_id=target, added_at=command.issued_at)
        return [added, _moderation_notice(command, state, "moderator_added", [target])]
    if not present:
        return []
    removed = ModeratorRemoved(user_id=target, removed_at=command.issued_at)
    return [removed, _moderation_notice(command, state, "moderator_removed", [target])]


MODERATION_TEAM = "role:moderation"  # a recipient standing for everyone with the moderation role


def _report(command: ReportStream, state: StreamState) -> list[Event]:
    """One report per reporter per window; N distinct reporters flag, M suspend (spec §8.2)."""
    _require_live(state)
    if command.actor_id == state.user_id:
        raise Rejection("cannot-report-own-stream", "you cannot report your own stream")
    if state.reported_by.get(command.actor_id, state.report_round) < state.report_round:
        return []  # their report was resolved already: the same reporter does not reopen it
    now_ms = millis(command.issued_at)
    since = now_ms - command.window_s * 1000
    recent = {r for r, at_ms in state.reporters.items() if at_ms > since}
    if command.actor_id in recent:
        return []  # reported already within the window: counted once
    count = len(recent) + 1
    now = command.issued_at
    events: list[Event] = [
        StreamReported(
            reporter_id=command.actor_id,
            reason=command.reason,
            reporters_in_window=count,
            window_s=command.window_s,
            reported_at=now,
            report_round=state.report_round,
        )
    ]
    if count >= command.suspend_at and state.moderation_status != "suspended":
        events.append(StreamSuspended(reporters_in_window=count, suspended_at=now))
        events.append(
            _moderation_notice(command, state, "stream_suspended", [state.user_id, MODERATION_TEAM])
        )
        events.extend(ending(state, now, "suspended"))
    elif count >= command.flag_at and state.moderation_status == "active":
        events.append(StreamFlagged(reporters_in_window=count, flagged_at=now))
        events.append(_moderation_notice(command, state, "stream_flagged", [MODERATION_TEAM]))
    return events


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


def _moderation_notice(
    command: Command, state: StreamState, kind: NoticeKind, to: list[str]
) -> ModerationNotified:
    """Told to the people concerned; one id per command and kind: a retried command tells them once."""
    return ModerationNotified(
        notification_id=derive_id(command.command_id, kind),
        kind=kind,
        channel_id=state.user_id,
        stream_id=command.aggregate_id,
        title=state.title,
        actor_name=state.username,
        recipients=to,
        sent_at=command.issued_at,
    )


def _gift_refusal(command: DeliverGift, state: StreamState) -> GiftRefusal | None:
    if state.status == "none":
        return "stream-not-found"
    if state.status != "live":
        return "stream-not-live"
    if not state.allow_gifts:
        return "gifts-disabled"
    if command.sender_id in state.banned:
        return "user-banned"
    if command.sender_id == state.user_id:
        return "cannot-gift-self"
    return None


def _deliver_gift(command: DeliverGift, state: StreamState) -> list[Event]:
    """Take a paid gift or refuse it (the wallet then refunds); each wallet gift is decided once."""
    gifter = state.gifters.get(command.sender_id)
    if gifter is not None and command.wallet_seq <= gifter[1]:
        return []  # decided already: a redelivery
    gift = command.gift
    refusal = _gift_refusal(command, state)
    if refusal is not None:
        return [
            GiftRefused(
                gift_tx=command.gift_tx,
                wallet_seq=command.wallet_seq,
                sender_id=command.sender_id,
                gift_id=gift.gift_id,
                count=command.count,
                coin_cost=command.coins,
                reason=refusal,
                refused_at=command.issued_at,
            )
        ]
    sent_ms = millis(command.issued_at)
    combo_id, combo_count = command.gift_tx, command.count
    previous = state.combos.get(command.sender_id)
    if (
        gift.comboable
        and previous is not None
        and previous[0] == gift.gift_id
        and 0 <= sent_ms - previous[3] <= command.combo_window_ms
    ):
        combo_id, combo_count = previous[1], previous[2] + command.count
    broadcaster_share, platform_share = split_revenue(command.coins, state.is_premium)
    return [
        GiftReceived(
            gift_tx=command.gift_tx,
            wallet_seq=command.wallet_seq,
            sender_id=command.sender_id,
            sender_username=command.sender_name,
            sender_profile_image=command.sender_profile_image,
            receiver_id=state.user_id,
            receiver_username=state.username,
            gift_id=gift.gift_id,
            gift_name=gift.name,
            gift_image_url=gift.image_url,
            gift_animation_url=gift.animation_url,
            count=command.count,
            coin_cost=command.coins,
            real_value_usd=usd(command.coins, command.coin_value_usd),
            broadcaster_share=broadcaster_share,
            platform_share=platform_share,
            is_premium_broadcaster=state.is_premium,
            revenue_rule=REVENUE_RULE,
            is_combo=combo_count > 1,
            combo_id=combo_id,
            combo_count=combo_count,
            sender_total_coins=(gifter[0] if gifter else 0) + command.coins,
            gifts=state.gifts + command.count,
            gift_revenue=state.gift_revenue + command.coins,
            sent_at=command.issued_at,
        )
    ]


def _invite_guest(command: InviteGuest, state: StreamState) -> list[Event]:
    """Multi-guest: the broadcaster invites; invitations and guests together stay within the limit."""
    _require_live(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster invites guests")
    target = command.target_user_id
    if target == state.user_id:
        raise Rejection("cannot-invite-self", "the broadcaster is on stage already")
    if target in state.banned:
        raise Rejection("user-banned", "a banned user cannot be invited")
    if target in state.guests or target in state.guest_invites:
        return []
    if len(state.guests) + len(state.guest_invites) >= command.max_guests:
        raise Rejection("guest-limit", f"at most {command.max_guests} guests and invitations at a time")
    invited = GuestInvited(user_id=target, invited_at=command.issued_at)
    return [invited, _moderation_notice(command, state, "guest_invited", [target])]


def _accept_guest(command: AcceptGuest, state: StreamState) -> list[Event]:
    _require_live(state)
    user = command.actor_id
    if user in state.guests:
        return []
    if user not in state.guest_invites:
        raise Rejection("not-invited", "there is no invitation for you on this stream")
    guests = [*state.guests, user]
    return [GuestJoined(user_id=user, joined_at=command.issued_at, guests=guests)]


def _remove_guest(command: RemoveGuest, state: StreamState) -> list[Event]:
    """The broadcaster takes someone off stage (or withdraws an invitation); a guest leaves (or
    declines) by removing themself."""
    if state.status == "none":
        raise Rejection("stream-not-found", "no stream with this id")
    target, actor = command.target_user_id, command.actor_id
    if actor not in (target, state.user_id):
        raise Rejection("not-stream-owner", "only the broadcaster or the guest themself can do this")
    on_stage = target in state.guests
    if not on_stage and target not in state.guest_invites:
        return []
    reason: Literal["left", "declined", "removed", "withdrawn"]
    if actor == target:
        reason = "left" if on_stage else "declined"
    else:
        reason = "removed" if on_stage else "withdrawn"
    guests = [g for g in state.guests if g != target]
    removed = GuestRemoved(
        user_id=target, by=actor, reason=reason, removed_at=command.issued_at, guests=guests
    )
    if actor == target:
        return [removed]
    return [removed, _moderation_notice(command, state, "guest_removed", [target])]


def battle_link_refusal(
    command: LinkBattle, state: StreamState
) -> BattleLinkRefusal | Literal["stream-not-found"] | None:
    """Why this stream cannot join the battle, if it cannot (both sides are checked by their streams)."""
    if state.status == "none":
        return "stream-not-found"
    if state.status != "live":
        return "stream-not-live"
    if state.user_id != command.broadcaster_id:
        return "not-stream-owner"
    if state.pk_battle_id and state.pk_battle_id != command.battle_id:
        return "stream-in-battle"
    return None


def _link_battle(command: LinkBattle, state: StreamState) -> list[Event]:
    """PK battle: a live stream in no other battle links; otherwise a refusal the battle hears of.

    An unknown stream records nothing (no stream to record it on); its refusal travels all the same.
    """
    if state.pk_battle_id == command.battle_id:
        return []  # linked already
    refusal = battle_link_refusal(command, state)
    if refusal == "stream-not-found":
        return []
    if refusal is not None:
        return [BattleLinkRefused(battle_id=command.battle_id, reason=refusal, refused_at=command.issued_at)]
    return [
        BattleLinked(
            battle_id=command.battle_id,
            side=command.side,
            opponent_stream_id=command.opponent_stream_id,
            opponent_user_id=command.opponent_user_id,
            linked_at=command.issued_at,
        )
    ]


def _unlink_battle(command: UnlinkBattle, state: StreamState) -> list[Event]:
    if state.pk_battle_id != command.battle_id:
        return []  # not (or no longer) in that battle; the battle hears so all the same
    return [BattleUnlinked(battle_id=command.battle_id, reason="battle_over", unlinked_at=command.issued_at)]
