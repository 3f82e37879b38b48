"""Who of a notice's recipients gets a push (projections/notices.py), and which go-live notices
exist at all (the fan-out, processors/streams.py): given a notice and preferences, then these
recipients; given a stream opened with a privacy, then these follower notifications."""

from __future__ import annotations

from typing import Any

import pytest
from gwt import at
from test_stream_decider import HOST, STREAM_FIELDS

from spaktok.commands.streams import OpenStream
from spaktok.events.audiences import FollowersNotified
from spaktok.events.battles import BattleNotified
from spaktok.events.schedules import RemindersNotified
from spaktok.events.streams import ModerationNotified
from spaktok.processors import core
from spaktok.processors.streams import STREAMS
from spaktok.projections.notices import (
    Notice,
    Preferences,
    category_of,
    message_for,
    push_recipients,
)

COMMON: dict[str, Any] = {
    "notification_id": "n-1",
    "channel_id": "chan",
    "title": "Friday night",
    "actor_name": "Hostess",
    "sent_at": at(0),
}


def go_live(*recipients: str) -> FollowersNotified:
    return FollowersNotified(**COMMON, kind="stream_started", stream_id="s-1", recipients=list(recipients))


def given_preferences(**mutes: Preferences) -> dict[str, Preferences]:
    return dict(mutes)


def test_without_preferences_every_recipient_gets_a_push() -> None:
    assert push_recipients(go_live("ann", "bob"), given_preferences()) == ["ann", "bob"]


def test_a_muted_channel_gets_no_push_to_whoever_muted_it() -> None:
    prefs = given_preferences(ann=Preferences(muted_channels=frozenset({"chan"})))
    assert push_recipients(go_live("ann", "bob"), prefs) == ["bob"]


def test_another_channel_muted_changes_nothing() -> None:
    prefs = given_preferences(ann=Preferences(muted_channels=frozenset({"other"})))
    assert push_recipients(go_live("ann"), prefs) == ["ann"]


def test_a_muted_kind_gets_no_push_of_that_kind_only() -> None:
    prefs = given_preferences(ann=Preferences(muted_kinds=frozenset({"go-live"})))
    assert push_recipients(go_live("ann"), prefs) == []
    reminder = RemindersNotified(**COMMON, kind="schedule_reminder", schedule_id="sc-1", recipients=["ann"])
    assert push_recipients(reminder, prefs) == ["ann"]


def test_a_role_recipient_reaches_the_inbox_but_no_device() -> None:
    flagged = ModerationNotified(
        **COMMON, kind="stream_flagged", stream_id="s-1", recipients=["role:moderation", "chan"]
    )
    assert push_recipients(flagged, given_preferences()) == ["chan"]


def test_a_recipient_named_twice_gets_one_push() -> None:
    assert push_recipients(go_live("ann", "ann"), given_preferences()) == ["ann"]


@pytest.mark.parametrize(
    ("notice", "category"),
    [
        (go_live("ann"), "go-live"),
        (FollowersNotified(**COMMON, kind="schedule_announced", schedule_id="x", recipients=[]), "schedule"),
        (RemindersNotified(**COMMON, kind="schedule_due", schedule_id="x", recipients=[]), "schedule"),
        (ModerationNotified(**COMMON, kind="banned", stream_id="s", recipients=[]), "moderation"),
        (BattleNotified(**COMMON, kind="pk_invited", stream_id="s", recipients=[]), "pk"),
    ],
)
def test_every_notice_type_falls_in_one_mutable_category(notice: Notice, category: str) -> None:
    assert category_of(notice) == category
    prefs = given_preferences(ann=Preferences(muted_kinds=frozenset({category})))
    assert push_recipients(notice.model_copy(update={"recipients": ["ann"]}), prefs) == []


def test_the_message_names_the_occasion_and_carries_routing_data() -> None:
    message = message_for(go_live("ann"))
    assert (message.title, message.body) == ("Hostess is live", "Friday night")
    assert message.data == {
        "notificationId": "n-1",
        "kind": "stream_started",
        "category": "go-live",
        "channelId": "chan",
        "streamId": "s-1",
    }
    assert message.collapse_key == "n-1"


# --- the go-live fan-out: only streams the followers may watch -------------------------------------


def opened(privacy: str) -> list[Any]:
    """The follow-up commands of opening a stream with `privacy`."""
    fields = {k: v for k, v in STREAM_FIELDS.items()}
    command = OpenStream(
        command_id="c-open", issued_at=at(0), actor_id=HOST, **{**fields, "privacy": privacy}
    )
    decision = core.execute(STREAMS, command, STREAMS.initial())
    return [f.command for f in decision.forwards if f.command.type == "audiences.NotifyFollowers"]


@pytest.mark.parametrize("privacy", ["public", "followers"])
def test_followers_hear_of_a_stream_they_may_watch(privacy: str) -> None:
    notify = opened(privacy)
    assert notify, "one notify command per audience shard"
    assert {c.stream_id for c in notify} == {STREAM_FIELDS["stream_id"]}


def test_followers_hear_nothing_of_a_private_stream() -> None:
    assert opened("private") == []
