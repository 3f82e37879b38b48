"""Multi-guest: the broadcaster invites viewers on stage; they accept, decline or leave, or are taken off.

Its own context (as `guests` is elsewhere), its part of the state the `Stage`: a ban takes the
banned off stage too, so `UserBanned` is folded here as well as in moderation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from spaktok.commands.base import Rejection
from spaktok.commands.stream.base import Deciders, require_live, require_stream
from spaktok.commands.stream.moderation import notice
from spaktok.commands.stream.state import Stage, StreamState, copy_with
from spaktok.commands.streams import AcceptGuest, InviteGuest, RemoveGuest
from spaktok.events.base import Event
from spaktok.events.streams import GuestInvited, GuestJoined, GuestRemoved, UserBanned


def _invite(command: InviteGuest, state: StreamState) -> list[Event]:
    """Multi-guest: the broadcaster invites; invitations and guests together stay within the limit."""
    require_live(state)
    if command.actor_id != state.user_id:
        raise Rejection("not-stream-owner", "only the broadcaster invites guests")
    target, stage = command.target_user_id, state.stage
    if target == state.user_id:
        raise Rejection("cannot-invite-self", "the broadcaster is on stage already")
    if target in state.moderation.banned:
        raise Rejection("user-banned", "a banned user cannot be invited")
    if target in stage.guests or target in stage.guest_invites:
        return []
    if len(stage.guests) + len(stage.guest_invites) >= command.max_guests:
        raise Rejection("guest-limit", f"at most {command.max_guests} guests and invitations at a time")
    invited = GuestInvited(user_id=target, invited_at=command.issued_at)
    return [invited, notice(command, state, "guest_invited", [target])]


def _accept(command: AcceptGuest, state: StreamState) -> list[Event]:
    require_live(state)
    user, stage = command.actor_id, state.stage
    if user in stage.guests:
        return []
    if user not in stage.guest_invites:
        raise Rejection("not-invited", "there is no invitation for you on this stream")
    guests = [*stage.guests, user]
    return [GuestJoined(user_id=user, joined_at=command.issued_at, guests=guests)]


def _remove(command: RemoveGuest, state: StreamState) -> list[Event]:
    """The broadcaster takes someone off stage (or withdraws an invitation); a guest leaves (or
    declines) by removing themself."""
    require_stream(state)
    target, actor, stage = command.target_user_id, command.actor_id, state.stage
    if actor not in (target, state.user_id):
        raise Rejection("not-stream-owner", "only the broadcaster or the guest themself can do this")
    on_stage = target in stage.guests
    if not on_stage and target not in stage.guest_invites:
        return []
    reason: Literal["left", "declined", "removed", "withdrawn"]
    if actor == target:
        reason = "left" if on_stage else "declined"
    else:
        reason = "removed" if on_stage else "withdrawn"
    guests = [g for g in stage.guests if g != target]
    removed = GuestRemoved(
        user_id=target, by=actor, reason=reason, removed_at=command.issued_at, guests=guests
    )
    if actor == target:
        return [removed]
    return [removed, notice(command, state, "guest_removed", [target])]


DECIDERS: Deciders = {InviteGuest: _invite, AcceptGuest: _accept, RemoveGuest: _remove}


def _invited(stage: Stage, event: GuestInvited) -> Stage:
    return copy_with(stage, guest_invites=(*stage.guest_invites, event.user_id))


def _moved(stage: Stage, event: GuestJoined | GuestRemoved) -> Stage:
    """Joined or removed: the event names who is on stage now; their invitation is answered."""
    invites = tuple(g for g in stage.guest_invites if g != event.user_id)
    return copy_with(stage, guests=tuple(event.guests), guest_invites=invites)


def _banned(stage: Stage, event: UserBanned) -> Stage:
    banned = event.user_id
    return Stage(
        guests=tuple(g for g in stage.guests if g != banned),  # a ban takes them off stage too
        guest_invites=tuple(g for g in stage.guest_invites if g != banned),
    )


FOLDS: dict[type[Event], Callable[[Stage, Any], Stage]] = {
    GuestInvited: _invited,
    GuestJoined: _moved,
    GuestRemoved: _moved,
    UserBanned: _banned,
}
