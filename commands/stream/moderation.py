"""The stream's moderation: its moderators, bans and timeouts, viewer reports that flag or suspend it,
and the notices telling the people concerned.

The platform team's side of reports and suspension is `commands.enforcement_decide`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from spaktok.commands.base import Command, Rejection
from spaktok.commands.stream.audience import leaving, watching
from spaktok.commands.stream.base import Deciders, require_live, require_stream
from spaktok.commands.stream.lifecycle import ending
from spaktok.commands.stream.state import Moderation, StreamState, copy_with, millis
from spaktok.commands.streams import (
    AddModerator,
    BanUser,
    DeleteComment,
    LiftTimeout,
    ModerationCommand,
    RemoveModerator,
    ReportStream,
    SyncChannelModerators,
    TimeoutUser,
    UnbanUser,
)
from spaktok.events.base import Event
from spaktok.events.envelope import derive_id
from spaktok.events.streams import (
    ChannelModeratorsChanged,
    ModerationNotified,
    ModeratorAdded,
    ModeratorRemoved,
    ModeratorRole,
    NoticeKind,
    ReportsResolved,
    StreamFlagged,
    StreamReported,
    StreamStarted,
    StreamSuspended,
    TimeoutLifted,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
)

MODERATION_TEAM = "role:moderation"  # a recipient standing for everyone with the moderation role


def notice(command: Command, state: StreamState, kind: NoticeKind, to: list[str]) -> ModerationNotified:
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


def moderator_role(command: ModerationCommand | DeleteComment, state: StreamState) -> ModeratorRole:
    require_stream(state)
    if command.actor_id == state.user_id:
        return "broadcaster"
    if command.actor_id in state.moderation.moderators:
        return "moderator"
    if command.actor_id in state.moderation.channel_moderators:
        return "channel_moderator"
    if command.platform_moderator:
        return "platform"
    raise Rejection("not-moderator", "only the broadcaster or a moderator can do this")


def _target(command: ModerationCommand, state: StreamState) -> str:
    if command.target_user_id == state.user_id:
        raise Rejection("cannot-moderate-broadcaster", "the broadcaster cannot be banned or muted")
    return command.target_user_id


def _ban(command: BanUser, state: StreamState) -> list[Event]:
    role = moderator_role(command, state)
    target = _target(command, state)
    if target in state.moderation.banned:
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
    events.append(notice(command, state, "banned", [target]))
    if watching(state, target):  # removed at once, with the watch time of this visit
        events.append(leaving(state, target, now, "banned", state.viewer_count - 1))
    return events


def _unban(command: UnbanUser, state: StreamState) -> list[Event]:
    role = moderator_role(command, state)
    if command.target_user_id not in state.moderation.banned:
        return []
    target = command.target_user_id
    return [
        UserUnbanned(user_id=target, by=command.actor_id, role=role, unbanned_at=command.issued_at),
        notice(command, state, "unbanned", [target]),
    ]


def _timeout(command: TimeoutUser, state: StreamState) -> list[Event]:
    """A new timeout replaces the old one (longer or shorter); it ends by itself at `until`."""
    role = moderator_role(command, state)
    target = _target(command, state)
    if target in state.moderation.banned:
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


def _lift_timeout(command: LiftTimeout, state: StreamState) -> list[Event]:
    """A timeout that is over already (or none) has nothing to lift."""
    role = moderator_role(command, state)
    target = command.target_user_id
    if state.moderation.muted_until.get(target, 0) <= millis(command.issued_at):
        return []
    return [TimeoutLifted(user_id=target, by=command.actor_id, role=role, lifted_at=command.issued_at)]


def _moderators(command: AddModerator | RemoveModerator, state: StreamState) -> list[Event]:
    require_stream(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster names moderators")
    target, present = command.target_user_id, command.target_user_id in state.moderation.moderators
    if isinstance(command, AddModerator):
        if present or target == state.user_id:
            return []
        added = ModeratorAdded(user_id=target, added_at=command.issued_at)
        return [added, notice(command, state, "moderator_added", [target])]
    if not present:
        return []
    removed = ModeratorRemoved(user_id=target, removed_at=command.issued_at)
    return [removed, notice(command, state, "moderator_removed", [target])]


def _sync_channel_moderators(command: SyncChannelModerators, state: StreamState) -> list[Event]:
    """The channel's moderators as the broadcaster now holds them; an ended stream keeps its own."""
    if state.status != "live":
        return []
    moderators = sorted(set(command.moderators) - {state.user_id})
    if tuple(moderators) == tuple(sorted(state.moderation.channel_moderators)):
        return []
    return [ChannelModeratorsChanged(moderators=moderators, changed_at=command.issued_at)]


def _report(command: ReportStream, state: StreamState) -> list[Event]:
    """One report per reporter per window; N distinct reporters flag, M suspend (spec §8.2)."""
    require_live(state)
    if command.actor_id == state.user_id:
        raise Rejection("cannot-report-own-stream", "you cannot report your own stream")
    moderation = state.moderation
    if moderation.reported_by.get(command.actor_id, moderation.report_round) < moderation.report_round:
        return []  # their report was resolved already: the same reporter does not reopen it
    since = millis(command.issued_at) - command.window_s * 1000
    recent = {r for r, at_ms in moderation.reporters.items() if at_ms > since}
    if command.actor_id in recent:
        return []  # reported already within the window: counted once
    count = len(recent) + 1
    reported = StreamReported(
        reporter_id=command.actor_id,
        reason=command.reason,
        reporters_in_window=count,
        window_s=command.window_s,
        reported_at=command.issued_at,
        report_round=moderation.report_round,
    )
    return [reported, *_reports_counted(command, state, count)]


def _reports_counted(command: ReportStream, state: StreamState, count: int) -> list[Event]:
    """What `count` reporters in the window do: suspend the stream (and end it), flag it, or nothing."""
    now, status = command.issued_at, state.moderation.moderation_status
    if count >= command.suspend_at and status != "suspended":
        return [
            StreamSuspended(reporters_in_window=count, suspended_at=now),
            notice(command, state, "stream_suspended", [state.user_id, MODERATION_TEAM]),
            *ending(state, now, "suspended"),
        ]
    if count >= command.flag_at and status == "active":
        return [
            StreamFlagged(reporters_in_window=count, flagged_at=now),
            notice(command, state, "stream_flagged", [MODERATION_TEAM]),
        ]
    return []


DECIDERS: Deciders = {
    BanUser: _ban,
    UnbanUser: _unban,
    TimeoutUser: _timeout,
    LiftTimeout: _lift_timeout,
    AddModerator: _moderators,
    RemoveModerator: _moderators,
    ReportStream: _report,
    SyncChannelModerators: _sync_channel_moderators,
}


def _banned(moderation: Moderation, event: UserBanned) -> Moderation:
    moderation.banned[event.user_id] = millis(event.banned_at)
    moderation.muted_until.pop(event.user_id, None)
    return moderation


def _unbanned(moderation: Moderation, event: UserUnbanned) -> Moderation:
    moderation.banned.pop(event.user_id, None)
    return moderation


def _timed_out(moderation: Moderation, event: UserTimedOut) -> Moderation:
    moderation.muted_until[event.user_id] = millis(event.until)
    return moderation


def _timeout_lifted(moderation: Moderation, event: TimeoutLifted) -> Moderation:
    moderation.muted_until.pop(event.user_id, None)
    return moderation


def _reported(moderation: Moderation, event: StreamReported) -> Moderation:
    reported = millis(event.reported_at)
    cutoff = reported - event.window_s * 1000
    reporters = moderation.reporters
    for reporter in [r for r, at_ms in reporters.items() if at_ms <= cutoff]:
        del reporters[reporter]  # bounded: only the window's reporters are kept
    reporters[event.reporter_id] = reported
    moderation.reported_by[event.reporter_id] = event.report_round
    return moderation


def _resolved(moderation: Moderation, event: ReportsResolved) -> Moderation:
    return copy_with(moderation, report_round=event.report_round + 1)


def _flagged(moderation: Moderation, event: StreamFlagged) -> Moderation:
    return copy_with(moderation, moderation_status="flagged")


def _suspended(moderation: Moderation, event: StreamSuspended) -> Moderation:
    return copy_with(moderation, moderation_status="suspended")


def _moderator_added(moderation: Moderation, event: ModeratorAdded) -> Moderation:
    return copy_with(moderation, moderators=(*moderation.moderators, event.user_id))


def _moderator_removed(moderation: Moderation, event: ModeratorRemoved) -> Moderation:
    remaining = tuple(m for m in moderation.moderators if m != event.user_id)
    return copy_with(moderation, moderators=remaining)


def _channel_moderators(moderation: Moderation, event: ChannelModeratorsChanged) -> Moderation:
    return copy_with(moderation, channel_moderators=tuple(event.moderators))


def _started(moderation: Moderation, event: StreamStarted) -> Moderation:
    return copy_with(moderation, channel_moderators=tuple(event.channel_moderators))


# how each moderation event changes a thawed Moderation: the maps in place, the rest replaced
FOLDS: dict[type[Event], Callable[[Moderation, Any], Moderation]] = {
    UserBanned: _banned,
    UserUnbanned: _unbanned,
    UserTimedOut: _timed_out,
    TimeoutLifted: _timeout_lifted,
    StreamReported: _reported,
    ReportsResolved: _resolved,
    StreamFlagged: _flagged,
    StreamSuspended: _suspended,
    ModeratorAdded: _moderator_added,
    ModeratorRemoved: _moderator_removed,
    ChannelModeratorsChanged: _channel_moderators,
    StreamStarted: _started,
}
