"""Platform enforcement in given/when/then form (issue #15): stream suspension, the reports queue,
account suspension and reinstatement, and private streams' allowed users."""

from __future__ import annotations

from typing import Any

import pytest
from gwt import Aggregate, at
from pydantic import ValidationError
from test_broadcaster_decider import start
from test_stream_decider import HOST, STREAM_ID, base, ended, joined, open_stream, started

from spaktok.commands.broadcaster_decide import BroadcasterState
from spaktok.commands.broadcaster_decide import decide as decide_channel
from spaktok.commands.broadcaster_decide import evolve as evolve_channel
from spaktok.commands.enforcement import ReinstateAccount, ResolveReports, SuspendAccount, SuspendStream
from spaktok.commands.enforcement_decide import parse_report_id
from spaktok.commands.stream_decide import decide
from spaktok.commands.stream_state import StreamState, evolve, thaw
from spaktok.commands.streams import ReportStream, UpdateStream
from spaktok.events.broadcasters import AccountReinstated, AccountSuspended, BroadcastClaimed
from spaktok.events.streams import (
    ModerationNotified,
    ReportsResolved,
    StreamEnded,
    StreamReported,
    StreamSuspended,
    StreamUpdated,
)

STREAM = Aggregate(StreamState, decide, evolve, thaw)
CHANNEL = Aggregate(BroadcasterState, decide_channel, evolve_channel)
ADMIN = "admin-1"
CHANNEL_USER = "host"  # the user of test_broadcaster_decider's `start`


def kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


# --- suspending a live stream ---------------------------------------------------------------------


def suspend(seconds: float, platform: bool = True, actor: str = ADMIN) -> SuspendStream:
    return SuspendStream(**base("suspend", actor, seconds), reason="nudity", platform_moderator=platform)


def test_the_platform_suspends_a_live_stream_and_it_ends_with_reason_suspended() -> None:
    events = STREAM.given(started(), joined("fan", 1)).when(suspend(30)).events()
    assert kinds(events) == ["StreamSuspended", "ModerationNotified", "ViewerLeft", "StreamEnded"]
    suspended, notice, _, end = events
    assert suspended == StreamSuspended(suspended_at=at(30), reason="nudity", suspended_by=ADMIN)
    assert isinstance(notice, ModerationNotified) and notice.recipients == [HOST, "role:moderation"]
    assert isinstance(end, StreamEnded) and end.reason == "suspended"


def test_a_suspended_stream_is_ended_and_marked_suspended() -> None:
    state = STREAM.given(started()).when(suspend(30)).then_state()
    assert (state.status, state.moderation_status) == ("ended", "suspended")


def test_an_ended_stream_cannot_be_suspended() -> None:
    STREAM.given(started(), ended(20)).when(suspend(30)).then_rejected("stream-not-live")


def test_an_unknown_stream_cannot_be_suspended() -> None:
    STREAM.given().when(suspend(30)).then_rejected("stream-not-found")


def test_only_the_platform_team_suspends_a_stream() -> None:
    STREAM.given(started()).when(suspend(30, platform=False, actor="fan")).then_rejected(
        "not-platform-moderator"
    )


def test_an_automatic_suspension_recorded_before_still_decodes() -> None:
    old = StreamSuspended.model_validate({"reporters_in_window": 10, "suspended_at": at(1)})
    assert (old.suspended_by, old.reason) == ("system", None)


# --- the reports queue ------------------------------------------------------------------------------


def report(reporter: str, seconds: float) -> ReportStream:
    return ReportStream(
        **base(f"report-{reporter}", reporter, seconds), reason="spam", flag_at=5, suspend_at=9, window_s=600
    )


def reported(reporter: str, seconds: float, count: int, report_round: int = 1) -> StreamReported:
    return StreamReported(
        reporter_id=reporter,
        reason="spam",
        reporters_in_window=count,
        window_s=600,
        reported_at=at(seconds),
        report_round=report_round,
    )


def resolve(seconds: float, action: str, report_round: int = 1, platform: bool = True) -> ResolveReports:
    return ResolveReports(
        **base(f"resolve-{action}", ADMIN, seconds),
        report_round=report_round,
        action=action,  # type: ignore[arg-type]
        note="looked at it",
        platform_moderator=platform,
    )


def resolved(seconds: float, action: str, reporters: int, report_round: int = 1) -> ReportsResolved:
    return ReportsResolved(
        report_id=f"{STREAM_ID}-{report_round}",
        report_round=report_round,
        action=action,  # type: ignore[arg-type]
        note="looked at it",
        resolved_by=ADMIN,
        reporters=reporters,
        resolved_at=at(seconds),
    )


def test_a_report_joins_the_open_round() -> None:
    STREAM.given(started()).when(report("ann", 10)).then(reported("ann", 10, 1))


def test_dismissing_closes_the_round_and_the_stream_stays_live() -> None:
    given = STREAM.given(started(), reported("ann", 10, 1), reported("bob", 20, 2))
    given.when(resolve(30, "dismiss")).then(resolved(30, "dismiss", 2))
    state = given.when(resolve(30, "dismiss")).then_state()
    assert (state.status, state.report_round) == ("live", 2)


def test_a_new_reporter_after_a_resolution_opens_the_next_round() -> None:
    given = STREAM.given(started(), reported("ann", 10, 1), resolved(30, "dismiss", 1))
    given.when(report("cy", 40)).then(reported("cy", 40, 2, report_round=2))


def test_a_reporter_whose_report_was_resolved_does_not_reopen_it() -> None:
    given = STREAM.given(started(), reported("ann", 10, 1), resolved(30, "dismiss", 1))
    given.when(report("ann", 700)).then()  # outside the window too: still nothing


def test_resolving_with_suspend_stream_ends_a_live_stream() -> None:
    events = STREAM.given(started(), reported("ann", 10, 1)).when(resolve(30, "suspend-stream")).events()
    assert kinds(events) == ["ReportsResolved", "StreamSuspended", "ModerationNotified", "StreamEnded"]
    assert isinstance(events[-1], StreamEnded) and events[-1].reason == "suspended"


def test_resolving_with_suspend_stream_after_the_stream_ended_only_resolves() -> None:
    given = STREAM.given(started(), reported("ann", 10, 1), ended(20))
    given.when(resolve(30, "suspend-stream")).then(resolved(30, "suspend-stream", 1))


def test_resolving_with_suspend_user_resolves_here_and_leaves_the_rest_to_the_channel() -> None:
    given = STREAM.given(started(), reported("ann", 10, 1))
    given.when(resolve(30, "suspend-user")).then(resolved(30, "suspend-user", 1))


def test_a_resolved_report_cannot_be_resolved_again() -> None:
    given = STREAM.given(started(), reported("ann", 10, 1), resolved(30, "dismiss", 1))
    given.when(resolve(40, "suspend-stream")).then_rejected("report-resolved")


def test_a_round_nobody_reported_is_not_a_report() -> None:
    STREAM.given(started()).when(resolve(30, "dismiss")).then_rejected("report-not-found")
    given = STREAM.given(started(), reported("ann", 10, 1))
    given.when(resolve(30, "dismiss", report_round=2)).then_rejected("report-not-found")


def test_only_the_platform_team_resolves_reports() -> None:
    given = STREAM.given(started(), reported("ann", 10, 1))
    given.when(resolve(30, "dismiss", platform=False)).then_rejected("not-platform-moderator")


def test_report_ids_name_the_stream_and_the_round() -> None:
    assert parse_report_id("st_abc-2") == ("st_abc", 2)
    assert parse_report_id("st-with-dash-12") == ("st-with-dash", 12)
    for bad in ("st_abc", "st_abc-", "-3", "st_abc-0", "st_abc-x1", "st_abc-99999999999"):
        assert parse_report_id(bad) is None


# --- account suspension on the channel ----------------------------------------------------------------


def suspend_account(seconds: float, until: float | None = None, platform: bool = True) -> SuspendAccount:
    return SuspendAccount(
        command_id=f"suspend-account-{seconds}",
        issued_at=at(seconds),
        actor_id=ADMIN,
        user_id=CHANNEL_USER,
        reason="fraud",
        until=None if until is None else at(until),
        platform_moderator=platform,
    )


def account_suspended(
    seconds: float, until: float | None = None, stream_id: str | None = None
) -> AccountSuspended:
    return AccountSuspended(
        reason="fraud",
        until=None if until is None else at(until),
        suspended_by=ADMIN,
        suspended_at=at(seconds),
        stream_id=stream_id,
    )


def reinstate(seconds: float, platform: bool = True) -> ReinstateAccount:
    return ReinstateAccount(
        command_id=f"reinstate-{seconds}",
        issued_at=at(seconds),
        actor_id=ADMIN,
        user_id=CHANNEL_USER,
        platform_moderator=platform,
    )


def reinstated(seconds: float) -> AccountReinstated:
    return AccountReinstated(reinstated_by=ADMIN, reinstated_at=at(seconds))


def test_suspending_an_account_names_the_live_stream_it_ends() -> None:
    live = BroadcastClaimed(stream_id="s-9", claimed_at=at(0))
    CHANNEL.given(live).when(suspend_account(10)).then(account_suspended(10, stream_id="s-9"))
    CHANNEL.given().when(suspend_account(10)).then(account_suspended(10))


def test_a_suspended_account_cannot_go_live() -> None:
    CHANNEL.given(account_suspended(10)).when(start("s-1", 20)).then_rejected("account-suspended")


def test_a_reinstated_account_goes_live_again() -> None:
    given = CHANNEL.given(account_suspended(10), reinstated(15))
    given.when(start("s-1", 20)).then(BroadcastClaimed(stream_id="s-1", claimed_at=at(20)))


def test_a_suspension_ends_by_itself_at_until() -> None:
    given = CHANNEL.given(account_suspended(10, until=100))
    given.when(start("s-1", 99)).then_rejected("account-suspended")
    given.when(start("s-1", 100)).then(BroadcastClaimed(stream_id="s-1", claimed_at=at(100)))


def test_a_suspension_until_the_past_is_refused() -> None:
    CHANNEL.given().when(suspend_account(10, until=10)).then_rejected("suspension-in-past")


def test_reinstating_lifts_a_suspension_once() -> None:
    CHANNEL.given(account_suspended(10)).when(reinstate(20)).then(reinstated(20))
    CHANNEL.given(account_suspended(10), reinstated(15)).when(reinstate(20)).then()
    CHANNEL.given(account_suspended(10, until=15)).when(reinstate(20)).then()  # ran out already


def test_only_the_platform_team_suspends_and_reinstates_accounts() -> None:
    CHANNEL.given().when(suspend_account(10, platform=False)).then_rejected("not-platform-moderator")
    CHANNEL.given(account_suspended(10)).when(reinstate(20, platform=False)).then_rejected(
        "not-platform-moderator"
    )


def test_the_channel_state_keeps_the_suspension_across_storage() -> None:
    state = CHANNEL.given(account_suspended(10, until=100)).state
    again = BroadcasterState.from_dict(state.to_dict())
    assert again == state and again.suspended and again.suspended_until_ms == int(at(100).timestamp() * 1000)


# --- allowed users of a private stream ----------------------------------------------------------------


def test_a_private_stream_opens_with_its_allowed_users() -> None:
    [event] = STREAM.given().when(open_stream(privacy="private", allowed_user_ids=["ann", "bob"])).events()
    assert event == started(privacy="private", allowed_user_ids=["ann", "bob"])
    state = STREAM.given(event).state
    assert state.allowed_user_ids == ("ann", "bob")


def test_the_owner_replaces_the_allowed_users() -> None:
    def update(users: list[str]) -> UpdateStream:
        return UpdateStream(**base("update", HOST, 5), allowed_user_ids=users)

    given = STREAM.given(started(privacy="private", allowed_user_ids=["ann"]))
    given.when(update(["ann", "cy"])).then(
        StreamUpdated(changes={"allowed_user_ids": ["ann", "cy"]}, updated_at=at(5))
    )
    assert given.when(update(["ann", "cy"])).then_state().allowed_user_ids == ("ann", "cy")
    given.when(update(["ann"])).then()  # the same list: nothing changes


def test_a_stream_started_before_allowed_users_existed_still_decodes() -> None:
    fields = started().model_dump()
    del fields["allowed_user_ids"]
    assert type(started()).model_validate(fields).allowed_user_ids == []


def test_allowed_users_are_bounded_and_each_named_once() -> None:
    fields = {k: v for k, v in open_stream().model_dump().items() if k != "allowed_user_ids"}
    assert open_stream(allowed_user_ids=["a", "b", "a"]).allowed_user_ids == ["a", "b"]
    with pytest.raises(ValidationError):
        type(open_stream()).model_validate({**fields, "allowed_user_ids": [f"u{i}" for i in range(201)]})
    with pytest.raises(ValidationError):
        type(open_stream()).model_validate({**fields, "allowed_user_ids": [""]})
