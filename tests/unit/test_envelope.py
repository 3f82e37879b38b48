"""Envelopes and wire formats: deterministic ids, JSON round trips, upcasting, command decoding."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, Literal

import orjson
import pytest
from gwt import at
from hypothesis import given
from hypothesis import strategies as st

from spaktok.commands.base import Command, decode_command
from spaktok.commands.broadcasters import ReleaseBroadcast, StartStream
from spaktok.commands.catalog import COMMAND_TYPES
from spaktok.commands.streams import JoinStream, RecordHeartbeats, RecordLikes, SendComment
from spaktok.events.base import EVENT_TYPES, UPCASTERS, Event, register_event, register_upcaster, upcast
from spaktok.events.broadcasters import BroadcastClaimed
from spaktok.events.catalog import EVENT_TYPES as CATALOG
from spaktok.events.envelope import Envelope, decode_envelope, derive_id, seal
from spaktok.events.streams import HeartbeatsRecorded, LikesRecorded, StreamStarted, ViewerJoined

STARTED = StreamStarted(
    stream_id="s-1",
    user_id="host",
    username="Hostess",
    title="Friday night",
    category="music",
    tags=["live"],
    language="en",
    privacy="followers",
    is_recorded=False,
    allow_comments=True,
    allow_gifts=False,
    is_age_restricted=False,
    is_premium=True,
    quality="1080p",
    location={"city": "Lyon", "lat": 45.76, "lng": None},
    ingest_url="rtmp://ingest/s-1",
    playback_url="https://cdn/s-1.m3u8",
    started_at=at(0),
)


def sealed(event: Event, command_id: str = "cmd-1", index: int | str = 0, **changes: Any) -> Envelope:
    fields: dict[str, Any] = dict(
        aggregate_id="s-1",
        sequence=7,
        command_id=command_id,
        index=index,
        correlation_id="corr-1",
        actor_id="host",
        occurred_at=at(1),
    )
    return seal(event, **{**fields, **changes})


# --- seal -----------------------------------------------------------------------------------------


def test_the_same_command_and_index_seal_the_same_event_id() -> None:
    assert sealed(STARTED, "cmd-1", 0).event_id == sealed(STARTED, "cmd-1", 0).event_id
    assert sealed(STARTED, "cmd-1", 0).event_id == derive_id("cmd-1", 0)


def test_another_index_or_command_seals_another_event_id() -> None:
    ids = {sealed(STARTED, "cmd-1", 0).event_id, sealed(STARTED, "cmd-1", 1).event_id}
    ids |= {sealed(STARTED, "cmd-2", 0).event_id, sealed(STARTED, "cmd-1", "comment").event_id}
    assert len(ids) == 4


def test_derived_ids_follow_a_fixed_recipe() -> None:
    # a changed namespace or separator would give already-stored events new ids on replay
    namespace = uuid.UUID("5b1f7e0c-9d3a-4c1e-8f5e-7a2b6c4d9e01")
    assert (
        derive_id("cmd-1", 0)
        == str(uuid.uuid5(namespace, "cmd-1:0"))
        == "fbbddeff-22de-5e8f-9194-d300e3a49e7b"
    )
    assert derive_id("cmd-1", "comment") == str(uuid.uuid5(namespace, "cmd-1:comment"))


def test_seal_records_the_metadata_and_a_json_payload_without_the_type() -> None:
    envelope = sealed(STARTED)
    assert (envelope.type, envelope.schema_version, envelope.aggregate_type) == (
        "streams.StreamStarted",
        1,
        "stream",
    )
    assert (envelope.aggregate_id, envelope.sequence, envelope.occurred_at) == ("s-1", 7, at(1))
    assert (envelope.causation_id, envelope.correlation_id, envelope.actor_id) == ("cmd-1", "corr-1", "host")
    assert "type" not in envelope.payload
    assert envelope.payload["started_at"] == "2025-03-01T20:00:00Z"
    assert envelope.payload["location"] == {"city": "Lyon", "lat": 45.76, "lng": None}


def test_a_broadcaster_event_is_sealed_for_the_broadcaster_aggregate() -> None:
    envelope = sealed(BroadcastClaimed(stream_id="s-1", claimed_at=at(0)), aggregate_id="host")
    assert (envelope.type, envelope.aggregate_type, envelope.aggregate_id) == (
        "broadcasters.BroadcastClaimed",
        "broadcaster",
        "host",
    )


# --- round trip -----------------------------------------------------------------------------------

EVENTS = [
    STARTED,
    ViewerJoined(
        user_id="ann",
        username="ann",
        user_profile_image=None,
        joined_at=at(2.5),
        viewer_count=1,
        peak_viewer_count=1,
        total_views=1,
    ),
    HeartbeatsRecorded(beats={"ann": at(3.123), "bob": at(4)}, count=3, viewer_count=2),
    LikesRecorded(likes={"ann": 3}, count=3, total_likes=10, recorded_at=at(5), action_ids=["k1", "anon:x"]),
    BroadcastClaimed(stream_id="s-1", claimed_at=at(0)),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.type)
def test_an_envelope_survives_the_wire(event: Event) -> None:
    envelope = sealed(event)
    decoded = decode_envelope(envelope.to_bytes())
    assert decoded == envelope
    assert decoded.event() == event
    assert type(decoded.event()) is type(event)


def test_every_event_module_is_in_the_catalog() -> None:
    assert {"streams.StreamStarted", "streams.CommandRejected", "broadcasters.BroadcastClaimed"} <= set(
        CATALOG
    )


def test_an_unknown_event_type_is_refused_on_read() -> None:
    data = orjson.loads(sealed(STARTED).to_bytes())
    with pytest.raises(ValueError, match="unknown event type 'streams.Nope'"):
        decode_envelope(orjson.dumps({**data, "type": "streams.Nope"}))


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[]", orjson.dumps({"type": "streams.StreamStarted"})],
    ids=["malformed", "not-an-object", "missing-fields"],
)
def test_a_malformed_envelope_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_envelope(raw)


def test_a_payload_that_does_not_fit_its_type_is_refused_when_read() -> None:
    data = orjson.loads(sealed(STARTED).to_bytes())
    envelope = decode_envelope(orjson.dumps({**data, "payload": {**data["payload"], "privacy": "secret"}}))
    with pytest.raises(ValueError):
        envelope.event()


# --- upcasting ------------------------------------------------------------------------------------


class Renamed(Event):
    """A throwaway event at v3: v1 called `title` `name`, v2 had no `language` yet."""

    type: Literal["tests.Renamed"] = "tests.Renamed"
    schema_version: ClassVar[int] = 3
    title: str
    language: str
    at: datetime


def upcast_renamed_v1_v2(payload: dict[str, Any]) -> dict[str, Any]:
    payload["title"] = payload.pop("name")
    return payload


def upcast_renamed_v2_v3(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "language": "en"}


@pytest.fixture
def renamed() -> Iterator[None]:
    register_event(Renamed)
    register_upcaster("tests.Renamed", 1)(upcast_renamed_v1_v2)
    register_upcaster("tests.Renamed", 2)(upcast_renamed_v2_v3)
    yield
    EVENT_TYPES.pop("tests.Renamed")
    UPCASTERS.pop(("tests.Renamed", 1))
    UPCASTERS.pop(("tests.Renamed", 2))


def stored(schema_version: int, payload: dict[str, Any]) -> bytes:
    envelope = sealed(Renamed(title="x", language="fr", at=at(0))).model_copy(
        update={"schema_version": schema_version, "payload": payload}
    )
    return envelope.to_bytes()


@pytest.mark.usefixtures("renamed")
def test_an_old_payload_is_upcast_step_by_step_on_read() -> None:
    envelope = decode_envelope(stored(1, {"name": "Old show", "at": "2025-03-01T20:00:00Z"}))
    assert envelope.event() == Renamed(title="Old show", language="en", at=at(0))
    assert envelope.payload == {
        "name": "Old show",
        "at": "2025-03-01T20:00:00Z",
    }  # the record is not rewritten


@pytest.mark.usefixtures("renamed")
def test_upcasting_starts_at_the_stored_version() -> None:
    envelope = decode_envelope(stored(2, {"title": "Mid show", "at": "2025-03-01T20:00:00Z"}))
    assert envelope.event() == Renamed(title="Mid show", language="en", at=at(0))


@pytest.mark.usefixtures("renamed")
def test_a_current_payload_is_read_as_is() -> None:
    payload = {"title": "New show", "language": "de", "at": "2025-03-01T20:00:00Z"}
    assert decode_envelope(stored(3, payload)).event() == Renamed(title="New show", language="de", at=at(0))


@pytest.mark.usefixtures("renamed")
def test_a_missing_upcaster_is_an_error_not_a_silent_default() -> None:
    UPCASTERS.pop(("tests.Renamed", 2))
    try:
        with pytest.raises(ValueError, match=r"no upcaster for tests.Renamed v2 -> v3"):
            upcast("tests.Renamed", 1, {"name": "Old show", "at": "2025-03-01T20:00:00Z"})
    finally:
        register_upcaster("tests.Renamed", 2)(upcast_renamed_v2_v3)


@pytest.mark.usefixtures("renamed")
def test_a_wire_name_belongs_to_one_class() -> None:
    class Impostor(Event):
        type: Literal["tests.Renamed"] = "tests.Renamed"

    with pytest.raises(TypeError, match="registered twice"):
        register_event(Impostor)
    assert EVENT_TYPES["tests.Renamed"] is Renamed


def test_an_event_needs_a_dotted_wire_name() -> None:
    class Nameless(Event):
        type: str = "Nameless"

    with pytest.raises(TypeError, match="literal `type`"):
        register_event(Nameless)
    assert "Nameless" not in EVENT_TYPES


# --- commands on the wire -------------------------------------------------------------------------

COMMANDS: list[Command] = [
    JoinStream(command_id="c-1", issued_at=at(1), actor_id="ann", stream_id="s-1", username="ann"),
    SendComment(
        command_id="c-2",
        correlation_id="corr-9",
        issued_at=at(2),
        actor_id="ann",
        stream_id="s-1",
        username="ann",
        text="hi",
        max_length=140,
        min_interval_ms=1000,
    ),
    RecordLikes(
        command_id="c-3",
        issued_at=at(3),
        actor_id="edge",
        stream_id="s-1",
        likes=[("k1", "ann", 2), ("anon:1", "bob", 1)],
    ),
    RecordHeartbeats(
        command_id="c-4", issued_at=at(4), actor_id="edge", stream_id="s-1", beats=[("ann", 1_700_000)]
    ),
    StartStream(
        command_id="c-5",
        issued_at=at(5),
        actor_id="host",
        user_id="host",
        stream_id="s-2",
        username="Hostess",
        title="t",
        category="c",
        tags=["a", "b"],
        ingest_url="rtmp://i",
        playback_url="https://p",
    ),
    ReleaseBroadcast(command_id="c-6", issued_at=at(6), actor_id="system", user_id="host", stream_id="s-2"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.type)
def test_a_command_survives_the_wire(command: Command) -> None:
    decoded = decode_command(command.to_bytes())
    assert decoded == command
    assert type(decoded) is type(command)


def test_the_correlation_defaults_to_the_command_id() -> None:
    assert (COMMANDS[0].correlation, COMMANDS[1].correlation) == ("c-1", "corr-9")


def test_every_command_module_is_in_the_catalog() -> None:
    assert {"streams.OpenStream", "streams.RecordLikes", "broadcasters.StartStream"} <= set(COMMAND_TYPES)
    assert "streams.LikeAction" not in COMMAND_TYPES  # a part of a batch, never sent alone


@pytest.mark.parametrize("raw", [b"[]", b'"streams.JoinStream"', b"42", b"null"])
def test_a_command_must_be_a_json_object(raw: bytes) -> None:
    with pytest.raises(ValueError, match="a command must be a JSON object"):
        decode_command(raw)


def test_malformed_json_is_not_a_command() -> None:
    with pytest.raises(ValueError):
        decode_command(b'{"type": ')


def test_an_unknown_command_type_is_refused() -> None:
    data = {**orjson.loads(COMMANDS[0].to_bytes()), "type": "streams.Nope"}
    with pytest.raises(ValueError, match="unknown command type 'streams.Nope'"):
        decode_command(orjson.dumps(data))


def test_a_command_without_a_type_is_refused() -> None:
    data = orjson.loads(COMMANDS[0].to_bytes())
    del data["type"]
    with pytest.raises(ValueError, match="unknown command type None"):
        decode_command(orjson.dumps(data))


@pytest.mark.parametrize("missing", ["command_id", "issued_at", "actor_id", "stream_id", "username"])
def test_a_command_missing_a_field_is_refused(missing: str) -> None:
    data = orjson.loads(COMMANDS[0].to_bytes())
    del data[missing]
    with pytest.raises(ValueError, match=missing):
        decode_command(orjson.dumps(data))


@pytest.mark.parametrize(
    "change",
    [{"bogus": 1}, {"command_id": ""}, {"issued_at": "yesterday"}, {"stream_id": "s" * 65}],
    ids=["extra-field", "empty-id", "bad-time", "long-stream-id"],
)
def test_a_command_with_a_bad_field_is_refused(change: dict[str, Any]) -> None:
    data = {**orjson.loads(COMMANDS[0].to_bytes()), **change}
    with pytest.raises(ValueError):
        decode_command(orjson.dumps(data))


@given(st.lists(st.one_of(st.text(), st.integers()), min_size=1, max_size=4))
def test_derived_ids_are_uuid5_of_the_joined_parts(parts: list[object]) -> None:
    from spaktok.events.envelope import NAMESPACE, derive_id

    expected = str(uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts)))
    assert derive_id(*parts) == expected
