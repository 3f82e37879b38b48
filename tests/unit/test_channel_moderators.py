"""Channel moderators (issue #18) given/when/then: the broadcaster names them, StartStream carries them
into the stream, a change while live is forwarded to it, and the stream lets them moderate with the
role `channel_moderator`. Old records (without the new fields) still load."""

from __future__ import annotations

from typing import Any

from gwt import Aggregate, at
from test_stream_decider import STREAM, ban, base, ended, open_stream, started

from spaktok.api.access import StreamFacts, Viewer, facts_after, moderator_access, stream_access
from spaktok.commands.broadcaster_decide import CHANNEL_MODERATOR_LIMIT, BroadcasterState, decide, evolve
from spaktok.commands.broadcasters import AddChannelModerator, RemoveChannelModerator, StartStream
from spaktok.commands.stream_state import StreamState, thaw
from spaktok.commands.streams import JoinStream, OpenStream, SyncChannelModerators
from spaktok.events.broadcasters import BroadcastClaimed, ChannelModeratorAdded, ChannelModeratorRemoved
from spaktok.events.streams import ChannelModeratorsChanged, ModeratorAdded, StreamStarted, UserBanned
from spaktok.processors.broadcasters import BROADCASTERS
from spaktok.processors.core import execute
from spaktok.processors.streams import STREAMS

BROADCASTER = Aggregate(BroadcasterState, decide, evolve)
HOST = "host"


def add(moderator: str, seconds: float = 1) -> AddChannelModerator:
    return AddChannelModerator(
        command_id=f"add-{moderator}-{seconds}",
        issued_at=at(seconds),
        actor_id=HOST,
        user_id=HOST,
        moderator_id=moderator,
    )


def remove(moderator: str, seconds: float = 2) -> RemoveChannelModerator:
    return RemoveChannelModerator(
        command_id=f"remove-{moderator}-{seconds}",
        issued_at=at(seconds),
        actor_id=HOST,
        user_id=HOST,
        moderator_id=moderator,
    )


def added(moderator: str, seconds: float = 1) -> ChannelModeratorAdded:
    return ChannelModeratorAdded(moderator_id=moderator, added_at=at(seconds))


def start(stream_id: str = "s-1", seconds: float = 5) -> StartStream:
    return StartStream(
        command_id=f"start-{stream_id}",
        issued_at=at(seconds),
        actor_id=HOST,
        user_id=HOST,
        stream_id=stream_id,
        username="Hostess",
        title="Friday night",
        category="music",
        ingest_url="rtmp://ingest",
        playback_url="https://cdn/s-1.m3u8",
    )


# --- the broadcaster names them -------------------------------------------------------------------


def test_the_broadcaster_names_a_channel_moderator() -> None:
    BROADCASTER.given().when(add("mod")).then(added("mod"))


def test_naming_a_moderator_twice_changes_nothing() -> None:
    BROADCASTER.given(added("mod")).when(add("mod", 3)).then()


def test_the_broadcaster_cannot_name_themselves() -> None:
    BROADCASTER.given().when(add(HOST)).then_rejected("cannot-moderate-self")


def test_a_channel_has_a_limited_number_of_moderators() -> None:
    many = [added(f"mod-{i}") for i in range(CHANNEL_MODERATOR_LIMIT)]
    refused = BROADCASTER.given(*many).when(add("one-more")).then_rejected("moderator-limit")
    assert "remove one" in refused.detail


def test_removing_a_named_moderator_and_one_never_named() -> None:
    BROADCASTER.given(added("mod")).when(remove("mod")).then(
        ChannelModeratorRemoved(moderator_id="mod", removed_at=at(2))
    )
    BROADCASTER.given(added("mod")).when(remove("other")).then()


def test_the_state_keeps_the_set_and_an_old_record_loads_without_it() -> None:
    state = BROADCASTER.given(added("a"), added("b")).when(remove("a")).then_state()
    assert state.channel_moderators == {"b"}
    assert BroadcasterState.from_dict(state.to_dict()) == state
    old = {"active_stream_id": None, "version": 3, "following": ["x"], "suspended": False}
    assert BroadcasterState.from_dict(old).channel_moderators == frozenset()


# --- the broadcaster hands them to its streams (the processor's follow-ups) -----------------------


def forwards(command: Any, *past: Any) -> list[Any]:
    state = BROADCASTER.given(*past).state
    return [f.command for f in execute(BROADCASTERS, command, state).forwards]


def test_going_live_carries_the_channel_moderators_into_the_stream() -> None:
    [opened] = forwards(start(), added("b"), added("a"))
    assert isinstance(opened, OpenStream) and opened.channel_moderators == ["a", "b"]


def test_a_moderator_named_while_live_is_forwarded_to_the_live_stream() -> None:
    claimed = BroadcastClaimed(stream_id="s-1", claimed_at=at(0))
    [sync] = forwards(add("b", 9), claimed, added("a"))
    assert isinstance(sync, SyncChannelModerators)
    assert (sync.stream_id, sync.moderators, sync.actor_id) == ("s-1", ["a", "b"], HOST)
    [sync] = forwards(remove("a", 9), claimed, added("a"))
    assert isinstance(sync, SyncChannelModerators) and sync.moderators == []


def test_nothing_is_forwarded_when_not_live_or_nothing_changed() -> None:
    assert forwards(add("a")) == []
    assert forwards(add("a", 9), BroadcastClaimed(stream_id="s-1", claimed_at=at(0)), added("a")) == []


# --- the stream lets them moderate --------------------------------------------------------------


def sync(seconds: float, *moderators: str) -> SyncChannelModerators:
    return SyncChannelModerators(**base("sync", HOST, seconds), moderators=list(moderators))


def test_a_stream_opens_with_the_channel_moderators() -> None:
    state = STREAM.given().when(open_stream(channel_moderators=["cm"])).then_state()
    assert state.moderation.channel_moderators == ("cm",) and state.moderation.moderates("cm")


def test_a_channel_moderator_bans_with_their_role() -> None:
    events = STREAM.given(started(channel_moderators=["cm"])).when(ban("cm", 10)).events()
    assert isinstance(events[0], UserBanned) and (events[0].by, events[0].role) == ("cm", "channel_moderator")


def test_a_stream_moderator_who_is_also_a_channel_moderator_acts_as_the_streams() -> None:
    past = (started(channel_moderators=["cm"]), ModeratorAdded(user_id="cm", added_at=at(1)))
    events = STREAM.given(*past).when(ban("cm", 10)).events()
    assert isinstance(events[0], UserBanned) and events[0].role == "moderator"


def test_the_live_stream_takes_the_channels_new_set() -> None:
    STREAM.given(started(channel_moderators=["a"])).when(sync(10, "b", "a", HOST)).then(
        ChannelModeratorsChanged(moderators=["a", "b"], changed_at=at(10))
    )
    STREAM.given(started(channel_moderators=["a"])).when(sync(10, "a")).then()  # unchanged


def test_an_ended_stream_keeps_the_moderators_it_had() -> None:
    STREAM.given(started(channel_moderators=["a"]), ended(50)).when(sync(60)).then()


def test_a_removed_channel_moderator_may_no_longer_ban() -> None:
    past = (started(channel_moderators=["a"]), ChannelModeratorsChanged(moderators=[], changed_at=at(5)))
    STREAM.given(*past).when(ban("a", 10)).then_rejected("not-moderator")


def test_a_channel_moderator_joins_a_private_stream() -> None:
    join = JoinStream(**base("join", "cm", 10), username="@cm")
    given = STREAM.given(started(privacy="private", channel_moderators=["cm"]))
    assert given.when(join).events()[0].type == "streams.ViewerJoined"


def test_an_old_stream_record_without_channel_moderators_loads() -> None:
    state = STREAM.given(started(channel_moderators=["cm"])).state
    record = state.to_dict()
    assert StreamState.from_dict(record).moderation.channel_moderators == ("cm",)
    del record["channel_moderators"]
    assert StreamState.from_dict(record).moderation.channel_moderators == ()


def test_an_old_stream_started_event_has_no_channel_moderators() -> None:
    payload = started().model_dump(mode="json")
    del payload["channel_moderators"]
    assert StreamStarted.model_validate(payload).channel_moderators == []


# --- the read policy counts them as the stream's moderators ---------------------------------------


def test_the_access_policy_lets_channel_moderators_in_and_follows_changes() -> None:
    private = StreamFacts("s-1", HOST, privacy="private", channel_moderators=frozenset({"cm"}))
    assert stream_access(private, Viewer("cm")).allowed
    assert moderator_access(private, Viewer("cm")).allowed
    doc = {"streamId": "s-1", "userId": HOST, "privacy": "private", "channelModerators": ["cm"]}
    assert StreamFacts.from_document(doc) == private
    after = facts_after(private, "streams.ChannelModeratorsChanged", {"moderators": []})
    assert stream_access(after, Viewer("cm")).status == 404


def test_nobody_waits_for_the_set_a_channel_forwards() -> None:
    """The channel answered the broadcaster's command; the stream's decision on the forward is final
    for no one (no second answer under the same correlation)."""
    state = thaw(STREAM.given(started()).state)
    decision = execute(STREAMS, sync(10, "a"), state)
    assert [e.type for e in decision.events] == ["streams.ChannelModeratorsChanged"]
    assert decision.outcome is None
