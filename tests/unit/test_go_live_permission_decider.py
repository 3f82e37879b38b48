"""The permission to go live (spec §3.1, issue #18) given/when/then: the channel refuses a suspended
account (`account-suspended`, the shared contract's slug) and, when the platform sets a minimum age,
a broadcaster who may be younger or whose age is unknown (`streaming-not-permitted`)."""

from __future__ import annotations

from typing import Any

from gwt import Aggregate, at

from spaktok.commands.broadcaster_decide import BroadcasterState, decide, evolve
from spaktok.commands.broadcasters import StartStream
from spaktok.commands.streams import OpenStream
from spaktok.events.broadcasters import AccountReinstated, AccountSuspended, BroadcastClaimed
from spaktok.processors.broadcasters import BROADCASTERS
from spaktok.processors.core import execute

CHANNEL = Aggregate(BroadcasterState, decide, evolve)
HOST = "host"


def start(seconds: float = 10, **permission: Any) -> StartStream:
    return StartStream(
        command_id=f"start-{seconds}",
        issued_at=at(seconds),
        actor_id=HOST,
        user_id=HOST,
        stream_id="s-1",
        username="Hostess",
        title="Friday night",
        category="music",
        ingest_url="rtmp://ingest",
        playback_url="https://cdn/s-1.m3u8",
        **permission,
    )


def suspended(seconds: float = 1, until: float | None = None) -> AccountSuspended:
    return AccountSuspended(
        reason="abuse",
        until=at(until) if until is not None else None,
        suspended_by="mod",
        suspended_at=at(seconds),
    )


def claimed(seconds: float = 10) -> BroadcastClaimed:
    return BroadcastClaimed(stream_id="s-1", claimed_at=at(seconds))


def test_without_a_minimum_age_anyone_not_suspended_goes_live() -> None:
    CHANNEL.given().when(start()).then(claimed())
    CHANNEL.given().when(start(broadcaster_age=12)).then(claimed())


def test_an_adult_goes_live_when_the_platform_sets_a_minimum_age() -> None:
    CHANNEL.given().when(start(broadcaster_age=18, streaming_min_age=18)).then(claimed())


def test_a_broadcaster_who_may_be_younger_is_not_permitted() -> None:
    refused = CHANNEL.given().when(start(broadcaster_age=17, streaming_min_age=18))
    detail = refused.then_rejected("streaming-not-permitted").detail
    assert "aged 18 or over" in detail and "may be younger" in detail


def test_an_unknown_age_is_not_permitted_and_told_what_to_do() -> None:
    refused = CHANNEL.given().when(start(streaming_min_age=18))
    assert "add your date of birth" in refused.then_rejected("streaming-not-permitted").detail


def test_a_suspended_account_is_refused_first_and_told_until_when() -> None:
    given = CHANNEL.given(suspended(until=3600))
    detail = (
        given.when(start(broadcaster_age=12, streaming_min_age=18)).then_rejected("account-suspended").detail
    )
    assert "until 2025-03-01T21:00:00+00:00" in detail
    indefinitely = CHANNEL.given(suspended()).when(start()).then_rejected("account-suspended").detail
    assert "until reinstated" in indefinitely


def test_a_reinstated_or_expired_suspension_lets_them_go_live() -> None:
    CHANNEL.given(suspended(), AccountReinstated(reinstated_by="mod", reinstated_at=at(5))).when(
        start()
    ).then(claimed())
    CHANNEL.given(suspended(until=5)).when(start()).then(claimed())


def test_the_permission_fields_stay_with_the_channel() -> None:
    """The stream is opened without them (its command forbids unknown fields), and an old StartStream
    without them still decodes with no age rule."""
    [forward] = execute(
        BROADCASTERS, start(broadcaster_age=30, streaming_min_age=18), BroadcasterState()
    ).forwards
    assert isinstance(forward.command, OpenStream)
    old = start().model_dump(mode="json", exclude={"broadcaster_age", "streaming_min_age"})
    assert StartStream.model_validate(old).streaming_min_age == 0
