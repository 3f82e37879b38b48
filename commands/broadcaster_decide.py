"""The channel decider: a user holds at most one live stream at a time, follows channels, and names
the channel's moderators (who moderate every stream of the channel)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from spaktok.commands.base import Command, Rejection
from spaktok.commands.broadcasters import (
    AddChannelModerator,
    FollowUser,
    ReleaseBroadcast,
    RemoveChannelModerator,
    StartStream,
    UnfollowUser,
)
from spaktok.commands.channel_enforcement import (
    ACCOUNT_COMMANDS,
    decide_account,
    evolve_account,
    is_suspended,
)
from spaktok.events.base import Event
from spaktok.events.broadcasters import (
    AccountReinstated,
    AccountSuspended,
    BroadcastClaimed,
    BroadcastReleased,
    ChannelModeratorAdded,
    ChannelModeratorRemoved,
    UserFollowed,
    UserUnfollowed,
)

FOLLOWING_LIMIT = 10_000  # channels one user may follow (TikTok's limit too)
CHANNEL_MODERATOR_LIMIT = 100  # moderators one channel may name (a stream's own come on top)


@dataclass(frozen=True, slots=True)
class BroadcasterState:
    active_stream_id: str | None = None
    version: int = 0
    following: frozenset[str] = frozenset()
    # platform enforcement (issue #15): suspended until reinstated, or until `suspended_until_ms`
    suspended: bool = False
    suspended_until_ms: int | None = None
    channel_moderators: frozenset[str] = frozenset()  # issue #18; absent from older records

    def stats(self) -> dict[str, Any]:
        return {"activeStreamId": self.active_stream_id}

    def to_dict(self) -> dict[str, Any]:
        return {
            "active_stream_id": self.active_stream_id,
            "version": self.version,
            "following": sorted(self.following),
            "suspended": self.suspended,
            "suspended_until_ms": self.suspended_until_ms,
            "channel_moderators": sorted(self.channel_moderators),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BroadcasterState:
        sets = {name: frozenset(data.get(name, ())) for name in ("following", "channel_moderators")}
        return cls(**{**data, **sets})


def decide(command: Command, state: BroadcasterState) -> list[Event]:
    match command:
        case StartStream():
            _may_stream(command, state)
            if state.active_stream_id is not None:
                raise Rejection(
                    "stream-already-active",
                    f"you are already live in stream {state.active_stream_id}; end it first",
                )
            return [BroadcastClaimed(stream_id=command.stream_id, claimed_at=command.issued_at)]
        case ReleaseBroadcast():
            if state.active_stream_id != command.stream_id:
                return []  # an old stream's release arriving late changes nothing
            return [BroadcastReleased(stream_id=command.stream_id, released_at=command.issued_at)]
        case FollowUser():
            if command.followee_id == command.user_id:
                raise Rejection("cannot-follow-self", "you cannot follow yourself")
            if command.followee_id in state.following:
                return []  # following already
            if len(state.following) >= FOLLOWING_LIMIT:
                raise Rejection("follow-limit", f"you can follow at most {FOLLOWING_LIMIT:,} channels")
            return [UserFollowed(followee_id=command.followee_id, followed_at=command.issued_at)]
        case UnfollowUser():
            if command.followee_id not in state.following:
                return []
            return [UserUnfollowed(followee_id=command.followee_id, unfollowed_at=command.issued_at)]
        case AddChannelModerator() | RemoveChannelModerator():
            return _channel_moderators(command, state)
        case _ if isinstance(command, ACCOUNT_COMMANDS):
            return decide_account(command, state.suspended, state.suspended_until_ms, state.active_stream_id)
    raise Rejection("unsupported-command", f"the broadcaster aggregate does not handle {command.type}")


def _may_stream(command: StartStream, state: BroadcasterState) -> None:
    """The permission to go live (spec §3.1): not suspended, and old enough when the platform sets a
    minimum age (the token's birth year gives the youngest age it allows; none known: refused)."""
    if is_suspended(state.suspended, state.suspended_until_ms, command.issued_at):
        until = state.suspended_until_ms
        when = (
            f"until {datetime.fromtimestamp(until / 1000, UTC).isoformat()}" if until else "until reinstated"
        )
        detail = (
            f"your account is suspended {when}: you cannot go live; the platform's moderation team decides"
        )
        raise Rejection("account-suspended", detail)
    minimum, age = command.streaming_min_age, command.broadcaster_age
    if minimum and (age is None or age < minimum):
        why = (
            "your sign-in carries no birth year: add your date of birth to your profile and sign in again"
            if age is None
            else "your account's birth year says you may be younger"
        )
        raise Rejection(
            "streaming-not-permitted", f"going live needs an account holder aged {minimum} or over; {why}"
        )


def _channel_moderators(
    command: AddChannelModerator | RemoveChannelModerator, state: BroadcasterState
) -> list[Event]:
    """Naming someone twice, or removing someone not named, changes nothing."""
    target, named = command.moderator_id, command.moderator_id in state.channel_moderators
    if isinstance(command, RemoveChannelModerator):
        return [ChannelModeratorRemoved(moderator_id=target, removed_at=command.issued_at)] if named else []
    if target == command.user_id:
        raise Rejection("cannot-moderate-self", "you moderate your own channel already")
    if named:
        return []
    if len(state.channel_moderators) >= CHANNEL_MODERATOR_LIMIT:
        detail = f"a channel can have at most {CHANNEL_MODERATOR_LIMIT} moderators; remove one first"
        raise Rejection("moderator-limit", detail)
    return [ChannelModeratorAdded(moderator_id=target, added_at=command.issued_at)]


def evolve(state: BroadcasterState, event: Event) -> BroadcasterState:
    version = state.version + 1
    match event:
        case BroadcastClaimed():
            return replace(state, version=version, active_stream_id=event.stream_id)
        case BroadcastReleased():
            return replace(state, version=version, active_stream_id=None)
        case UserFollowed():
            return replace(state, version=version, following=state.following | {event.followee_id})
        case UserUnfollowed():
            return replace(state, version=version, following=state.following - {event.followee_id})
        case ChannelModeratorAdded():
            moderators = state.channel_moderators | {event.moderator_id}
            return replace(state, version=version, channel_moderators=moderators)
        case ChannelModeratorRemoved():
            moderators = state.channel_moderators - {event.moderator_id}
            return replace(state, version=version, channel_moderators=moderators)
        case AccountSuspended() | AccountReinstated():
            suspended, until_ms = evolve_account(event)
            return replace(state, version=version, suspended=suspended, suspended_until_ms=until_ms)
    return replace(state, version=version)
