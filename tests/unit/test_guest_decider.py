"""Multi-guest on the stream aggregate in given/when/then form (issue #5)."""

from __future__ import annotations

from gwt import Aggregate, at
from test_stream_decider import HOST, STREAM_ID, banned, ended, started

from spaktok.commands.stream_decide import decide
from spaktok.commands.stream_state import StreamState, evolve, thaw
from spaktok.commands.streams import AcceptGuest, InviteGuest, RemoveGuest
from spaktok.events.envelope import derive_id
from spaktok.events.streams import GuestInvited, GuestJoined, GuestRemoved, ModerationNotified

STREAM = Aggregate(StreamState, decide, evolve, thaw)


def invite(user: str, seconds: float = 1, by: str = HOST, limit: int = 8) -> InviteGuest:
    return InviteGuest(
        command_id=f"invite-{user}-{seconds}",
        issued_at=at(seconds),
        actor_id=by,
        stream_id=STREAM_ID,
        target_user_id=user,
        max_guests=limit,
    )


def accept(user: str, seconds: float = 2) -> AcceptGuest:
    return AcceptGuest(command_id=f"accept-{user}", issued_at=at(seconds), actor_id=user, stream_id=STREAM_ID)


def remove(user: str, by: str, seconds: float = 3) -> RemoveGuest:
    return RemoveGuest(
        command_id=f"remove-{user}-{by}",
        issued_at=at(seconds),
        actor_id=by,
        stream_id=STREAM_ID,
        target_user_id=user,
    )


def invited(user: str, seconds: float = 1) -> GuestInvited:
    return GuestInvited(user_id=user, invited_at=at(seconds))


def joined(user: str, guests: list[str], seconds: float = 2) -> GuestJoined:
    return GuestJoined(user_id=user, joined_at=at(seconds), guests=guests)


def notice(command_id: str, kind: str, user: str, seconds: float) -> ModerationNotified:
    return ModerationNotified(
        notification_id=derive_id(command_id, kind),
        kind=kind,
        channel_id=HOST,
        stream_id=STREAM_ID,
        title="Friday night",
        actor_name="Hostess",
        recipients=[user],
        sent_at=at(seconds),
    )


def test_the_broadcaster_invites_and_the_invited_user_is_told() -> None:
    STREAM.given(started()).when(invite("ann")).then(
        invited("ann"), notice("invite-ann-1", "guest_invited", "ann", 1)
    )


def test_only_the_broadcaster_invites_and_not_themself() -> None:
    STREAM.given(started()).when(invite("ann", by="bob")).then_rejected("not-stream-owner")
    STREAM.given(started()).when(invite(HOST)).then_rejected("cannot-invite-self")


def test_guests_and_invitations_stay_within_the_limit() -> None:
    given = (started(), invited("ann"), joined("ann", ["ann"]), invited("bob"))
    STREAM.given(*given).when(invite("cy", limit=2)).then_rejected("guest-limit")
    STREAM.given(*given).when(invite("cy", limit=3)).then(
        invited("cy"), notice("invite-cy-1", "guest_invited", "cy", 1)
    )


def test_a_banned_user_cannot_be_invited_and_a_ban_takes_a_guest_off_stage() -> None:
    STREAM.given(started(), banned("ann", 0.5)).when(invite("ann")).then_rejected("user-banned")
    state = STREAM.given(
        started(), invited("ann"), joined("ann", ["ann"]), invited("bob"), banned("ann", 4)
    ).state
    assert (state.guests, state.guest_invites) == ((), ("bob",))


def test_an_invited_user_accepts_and_goes_on_stage() -> None:
    STREAM.given(started(), invited("ann")).when(accept("ann")).then(joined("ann", ["ann"]))
    state = STREAM.given(started(), invited("ann"), joined("ann", ["ann"])).state
    assert (state.guests, state.guest_invites) == (("ann",), ())


def test_accepting_without_an_invitation_is_refused_and_twice_changes_nothing() -> None:
    STREAM.given(started()).when(accept("ann")).then_rejected("not-invited")
    STREAM.given(started(), invited("ann"), joined("ann", ["ann"])).when(accept("ann")).then()


def test_a_guest_leaves_or_declines_and_the_broadcaster_removes_or_withdraws() -> None:
    on_stage = (started(), invited("ann"), invited("bob"), joined("ann", ["ann"]))
    STREAM.given(*on_stage).when(remove("ann", by="ann")).then(
        GuestRemoved(user_id="ann", by="ann", reason="left", removed_at=at(3), guests=[])
    )
    STREAM.given(*on_stage).when(remove("bob", by="bob")).then(
        GuestRemoved(user_id="bob", by="bob", reason="declined", removed_at=at(3), guests=["ann"])
    )
    STREAM.given(*on_stage).when(remove("ann", by=HOST)).then(
        GuestRemoved(user_id="ann", by=HOST, reason="removed", removed_at=at(3), guests=[]),
        notice(f"remove-ann-{HOST}", "guest_removed", "ann", 3),
    )
    STREAM.given(*on_stage).when(remove("bob", by=HOST)).then(
        GuestRemoved(user_id="bob", by=HOST, reason="withdrawn", removed_at=at(3), guests=["ann"]),
        notice(f"remove-bob-{HOST}", "guest_removed", "bob", 3),
    )


def test_nobody_else_removes_a_guest_and_removing_a_stranger_changes_nothing() -> None:
    on_stage = (started(), invited("ann"), joined("ann", ["ann"]))
    STREAM.given(*on_stage).when(remove("ann", by="troll")).then_rejected("not-stream-owner")
    STREAM.given(*on_stage).when(remove("zed", by=HOST)).then()


def test_an_ended_stream_takes_no_guests() -> None:
    STREAM.given(started(), ended(5)).when(invite("ann", seconds=6)).then_rejected("stream-not-live")
    STREAM.given(started(), invited("ann"), ended(5)).when(accept("ann", seconds=6)).then_rejected(
        "stream-not-live"
    )
