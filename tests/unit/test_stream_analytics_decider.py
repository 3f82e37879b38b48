"""Demographics on joins and the 5-minute analytics snapshot, in given/when/then form."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from gwt import Given, at, fold
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_money_deciders import LION, deliver, received
from test_stream_decider import STREAM, base, commented, ended, join, joined, leave, left, liked, started

from spaktok.commands.stream.state import StreamState, copy_with, millis
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


USERS = [f"u{i:02d}" for i in range(16)]  # more than ten, few enough to come back often


def brute_force_top(state: StreamState, now_ms: int) -> list[dict[str, Any]]:
    """Every user's watch time, past plus running, sorted (what the snapshot did before)."""
    totals = dict(state.audience.watch_time.items())
    for user, (joined_ms, _) in state.audience.viewers.items():
        totals[user] = totals.get(user, 0) + max(0, now_ms - joined_ms) // 1000
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return [{"user_id": user, "watch_time": watched} for user, watched in ranked]


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(st.sampled_from(USERS), st.integers(0, 60)), max_size=150),
    later=st.integers(0, 600),
)
def test_a_snapshots_top_viewers_are_the_longest_watch_times_at_its_time(
    steps: list[tuple[str, int]], later: int
) -> None:
    """The ten longest watch times (past visits plus the running one, ties by id) after any joins
    and leaves, against a plain sort of every user's; and the same from a stream whose longest past
    watch times were not kept (started before they were), which reads every watch time."""
    state, seconds = STREAM.given(started()).state, 0
    for user, pause in steps:
        seconds += pause
        command = leave(user, seconds) if user in state.audience.viewers else join(user, seconds)
        state = fold(STREAM.evolve, STREAM.thaw(state), STREAM.decide(command, state))
    expected = brute_force_top(state, millis(at(seconds + later)))
    for kept in (state, copy_with(state, audience=copy_with(state.audience, longest=None))):
        [event] = Given(STREAM, kept).when(snapshot(seconds + later)).events()
        assert isinstance(event, StreamAnalyticsRecorded)
        assert event.top_viewers == expected


def test_the_longest_past_watch_times_are_kept_through_joins_and_leaves() -> None:
    state = STREAM.given(
        started(), joined("ann", 0), joined("bob", 0), left("ann", 100, watch_time=100), joined("ann", 200)
    ).state
    assert state.audience.longest == (("ann", 100), ("bob", 0))


def came_back(user: str, watched: int, back_at: int) -> list[Any]:
    return [joined(user, 0), left(user, watched, watch_time=watched), joined(user, back_at)]


@pytest.mark.parametrize(
    ("returner", "back_at", "first_joins_at"),
    [
        # past 40 s + running 25 s = 65, as much as the first viewers': only the floor of the longest
        # past watch times (50 s) lets the pass over the viewers find them
        ("ar", 140, 100),
        # past 50 s (the floor itself) + running exactly the bar less the floor: ties the tenth
        ("m", 156, 106),
    ],
)
def test_a_returning_viewer_outside_the_longest_kept_still_ranks(
    returner: str, back_at: int, first_joins_at: int
) -> None:
    longest = [e for n in range(10) for e in (joined(f"h{n}", 0), left(f"h{n}", 50 + n, watch_time=50 + n))]
    past = 40 if returner == "ar" else 50
    first = [joined(f"x{n}", first_joins_at) for n in range(10)]
    state = STREAM.given(started(), *longest, *came_back(returner, past, back_at), *first).state
    [event] = Given(STREAM, state).when(snapshot(165)).events()
    assert isinstance(event, StreamAnalyticsRecorded)
    assert event.top_viewers == brute_force_top(state, millis(at(165)))
    assert returner in {v["user_id"] for v in event.top_viewers}  # the case this test is for
