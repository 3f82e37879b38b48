"""Demographics on joins and the 5-minute analytics snapshot, in given/when/then form."""

from __future__ import annotations

import orjson
import pytest
from gwt import Given, at
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_money_deciders import LION, deliver, received
from test_stream_decider import STREAM, base, commented, ended, joined, left, liked, started

from spaktok.commands.parted_map import PartedMap
from spaktok.commands.stream.state import copy_with, millis
from spaktok.commands.stream_analytics import age_bucket
from spaktok.commands.streams import JoinStream, RecordAnalyticsSnapshot
from spaktok.events.envelope import Envelope
from spaktok.events.streams import StreamAnalyticsRecorded, ViewerJoined


def join_from(user: str, seconds: float, **claims: object) -> JoinStream:
    return JoinStream(**base("join", user, seconds), username=f"@{user}", **claims)


def snapshot(seconds: float) -> RecordAnalyticsSnapshot:
    return RecordAnalyticsSnapshot(**base("snapshot", "system", seconds))


@pytest.mark.parametrize(
    ("age", "bucket"),
    [(None, None), (13, "under-18"), (17, "under-18"), (18, "18-24"), (24, "18-24"), (25, "25-34"),
     (44, "35-44"), (45, "45-54"), (64, "55-64"), (65, "65+"), (101, "65+")],
)  # fmt: skip
def test_ages_fall_into_buckets(age: int | None, bucket: str | None) -> None:
    assert age_bucket(age) == bucket


def test_a_join_carries_the_viewers_country_and_age_bucket() -> None:
    [event] = STREAM.given(started()).when(join_from("ann", 5, country="FR", age=30)).events()
    assert isinstance(event, ViewerJoined)
    assert (event.country, event.age_bucket) == ("FR", "25-34")


def test_a_join_without_claims_has_unknown_demographics() -> None:
    [event] = STREAM.given(started()).when(join_from("ann", 5)).events()
    assert isinstance(event, ViewerJoined)
    assert (event.country, event.age_bucket) == (None, None)


def test_a_country_must_be_two_capital_letters() -> None:
    with pytest.raises(ValidationError):
        join_from("ann", 5, country="France")


def test_a_viewer_joined_written_before_demographics_still_decodes() -> None:
    old_payload = {
        "user_id": "ann",
        "username": "ann",
        "joined_at": "2025-03-01T20:00:05Z",
        "viewer_count": 1,
        "peak_viewer_count": 1,
        "total_views": 1,
    }
    raw = orjson.dumps(
        {
            "event_id": "e-1",
            "type": "streams.ViewerJoined",
            "schema_version": 1,
            "aggregate_type": "stream",
            "aggregate_id": "s-1",
            "sequence": 2,
            "occurred_at": "2025-03-01T20:00:05Z",
            "causation_id": "c",
            "correlation_id": "c",
            "actor_id": "ann",
            "payload": old_payload,
        }
    )
    event = Envelope.model_validate_json(raw).event()
    assert isinstance(event, ViewerJoined)
    assert (event.country, event.age_bucket) == (None, None)


def test_a_snapshot_records_the_streams_figures_with_running_visits() -> None:
    gift = deliver(1, LION, count=2, seconds=40)
    given = STREAM.given(
        started(),
        joined("ann", 0),
        joined("bob", 10),
        left("ann", 100, watch_time=100),
        joined("cat", 200),
        commented("bob", 20, comments=1),
        liked(30, 7, "a-1"),
        received(gift),
    )
    [event] = given.when(snapshot(300)).events()
    assert isinstance(event, StreamAnalyticsRecorded)
    assert event.recorded_at == at(300)
    assert (event.viewer_count, event.peak_viewer_count, event.total_views) == (2, 2, 3)
    assert (event.likes, event.comments, event.gifts, event.revenue) == (7, 1, gift.count, gift.coins)
    assert event.top_viewers == [
        {"user_id": "bob", "watch_time": 290},
        {"user_id": "ann", "watch_time": 100},
        {"user_id": "cat", "watch_time": 100},
    ]
    assert event.top_gifters == [{"user_id": "fan", "coins": gift.coins, "gifts": gift.count}]


def test_a_stream_that_is_not_live_takes_no_snapshot() -> None:
    STREAM.given().when(snapshot(300)).then()
    STREAM.given(started(), ended(60)).when(snapshot(300)).then()


def test_a_snapshot_takes_a_sequence_number_and_changes_nothing_else() -> None:
    given = STREAM.given(started(), joined("ann", 0))
    after = given.when(snapshot(300)).then_state()
    assert after.version == given.state.version + 1
    assert (after.viewers, after.likes, after.watch_time) == (given.state.viewers, 0, {"ann": 0})


@settings(max_examples=60, deadline=None)
@given(
    past=st.dictionaries(st.sampled_from([f"u{i}" for i in range(40)]), st.integers(0, 500), max_size=30),
    watching=st.dictionaries(st.sampled_from([f"u{i}" for i in range(40)]), st.integers(0, 300), max_size=30),
)
def test_a_snapshots_top_viewers_are_the_longest_watch_times_at_its_time(
    past: dict[str, int], watching: dict[str, int]
) -> None:
    """The ten longest watch times (past visits plus the running one, ties by id), against a plain
    sort of every viewer, for viewers with and without past visits and past-only viewers."""
    state = STREAM.given(started()).state
    now_ms = millis(at(300))
    viewers = {user: [now_ms - seconds * 1000, now_ms] for user, seconds in watching.items()}
    live = copy_with(
        state, audience=copy_with(state.audience, viewers=PartedMap(viewers), watch_time=PartedMap(past))
    )
    totals = {user: past.get(user, 0) + watching.get(user, 0) for user in {*past, *watching}}
    expected = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    [event] = Given(STREAM, live).when(snapshot(300)).events()
    assert isinstance(event, StreamAnalyticsRecorded)
    assert event.top_viewers == [{"user_id": user, "watch_time": watched} for user, watched in expected]
