"""Edge batches of joins (`JoinViewers`): each viewer is decided as their own `JoinStream` would be.

Given/when/then on the pure decider, a property that compares a batch with the same joins one by
one, and the worker's core sealing a batch (refusals without a sequence, an answer per viewer).
"""

from __future__ import annotations

import asyncio
from typing import Any

from gwt import Aggregate, at, fold
from hypothesis import given, settings
from hypothesis import strategies as st
from test_stream_decider import HOST, STREAM_ID, banned, joined, left, started

from spaktok.api.batching import EdgeBatcher, member_answer
from spaktok.commands.base import Rejection
from spaktok.commands.outcome import Outcome
from spaktok.commands.stream_decide import decide
from spaktok.commands.stream_state import StreamState, evolve, thaw
from spaktok.commands.streams import ArrivingViewer, JoinStream, JoinViewers
from spaktok.events.base import Event
from spaktok.events.streams import (
    ModeratorAdded,
    ViewerJoined,
    ViewersRefused,
)
from spaktok.processors.core import execute
from spaktok.processors.streams import STREAMS

STREAM = Aggregate(StreamState, decide, evolve, thaw)
USERS = ["ann", "bob", "cat", "dan", "eve", "fay", HOST]


def arriving(user: str, **facts: Any) -> ArrivingViewer:
    return ArrivingViewer(user_id=user, username=f"@{user}", **facts)


def batch(seconds: float, *viewers: ArrivingViewer) -> JoinViewers:
    return JoinViewers(
        command_id=f"joins-{seconds}",
        issued_at=at(seconds),
        actor_id="edge",
        stream_id=STREAM_ID,
        viewers=list(viewers),
    )


def joined_now(user: str, seconds: float, count: int, peak: int, views: int) -> ViewerJoined:
    return ViewerJoined(
        user_id=user,
        username=f"@{user}",
        joined_at=at(seconds),
        viewer_count=count,
        peak_viewer_count=peak,
        total_views=views,
    )


# --- given / when / then ------------------------------------------------------------------------


def test_a_batch_of_new_viewers_counts_them_one_after_another() -> None:
    STREAM.given(started(), joined("ann", 1), left("ann", 2, watch_time=1)).when(
        batch(5, arriving("bob"), arriving("ann"), arriving("cat"))
    ).then(
        joined_now("bob", 5, count=1, peak=1, views=2),
        joined_now("ann", 5, count=2, peak=2, views=2),  # ann came back: not a new view
        joined_now("cat", 5, count=3, peak=3, views=3),
    )


def test_viewers_watching_already_or_twice_in_the_batch_join_once() -> None:
    STREAM.given(started(), joined("ann", 1)).when(
        batch(5, arriving("ann"), arriving("bob"), arriving("bob"))
    ).then(joined_now("bob", 5, count=2, peak=2, views=2))


def test_refused_viewers_are_named_with_the_reason_a_lone_join_gets() -> None:
    STREAM.given(started(privacy="followers"), banned("troll", 1)).when(
        batch(
            5,
            arriving("troll", follows_broadcaster=True),
            arriving("fan", follows_broadcaster=True),
            arriving("ann"),
        )
    ).then(
        joined_now("fan", 5, count=1, peak=1, views=1),
        ViewersRefused(
            refused={
                "troll": ("user-banned", "you are banned from this stream"),
                "ann": ("followers-only", "follow the broadcaster to watch this stream"),
            }
        ),
    )


def test_a_batch_for_a_stream_that_is_not_live_is_refused_whole() -> None:
    STREAM.given().when(batch(5, arriving("ann"))).then_rejected("stream-not-found")


# --- the property: a batch decides what its joins one by one decide ------------------------------

FACTS = st.fixed_dictionaries(
    {
        "follows_broadcaster": st.booleans(),
        "age": st.one_of(st.none(), st.integers(13, 40)),
        "platform_moderator": st.sampled_from([False, False, False, True]),
    }
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Event], list[ArrivingViewer]]:
    privacy = draw(st.sampled_from(["public", "followers", "private"]))
    allowed = draw(st.lists(st.sampled_from(USERS), unique=True, max_size=3))
    past: list[Event] = [
        started(privacy=privacy, is_age_restricted=draw(st.booleans()), allowed_user_ids=allowed)
    ]
    for second, user in enumerate(draw(st.lists(st.sampled_from(USERS[:-1]), unique=True, max_size=5)), 1):
        kind = draw(st.sampled_from(["watching", "visited", "banned", "moderator"]))
        if kind == "banned":
            past.append(banned(user, second))
        elif kind == "moderator":
            past.append(ModeratorAdded(user_id=user, added_at=at(second)))
        else:
            past.append(joined(user, second))
            if kind == "visited":
                past.append(left(user, second + 0.5, watch_time=1))
    members = draw(st.lists(st.tuples(st.sampled_from(USERS), FACTS), min_size=1, max_size=10))
    return past, [arriving(user, **facts) for user, facts in members]


def one_by_one(
    state: StreamState, viewers: list[ArrivingViewer]
) -> tuple[list[Event], dict[str, tuple[str, str]]]:
    """The events and refusals of each viewer's own `JoinStream`, decided in turn."""
    events: list[Event] = []
    refused: dict[str, tuple[str, str]] = {}
    for viewer in viewers:
        facts = viewer.model_dump(exclude={"user_id"})
        lone = JoinStream(
            command_id=f"join-{viewer.user_id}",
            issued_at=at(60),
            actor_id=viewer.user_id,
            stream_id=STREAM_ID,
            **facts,
        )
        try:
            decided = decide(lone, state)
        except Rejection as refusal:
            refused[viewer.user_id] = (refusal.reason, refusal.detail)
            continue
        state = fold(evolve, state, decided)
        events += decided
    return events, refused


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_a_batch_decides_what_its_joins_decide_one_by_one(
    scenario: tuple[list[Event], list[ArrivingViewer]],
) -> None:
    past, viewers = scenario
    state = STREAM.given(*past).state
    expected, refused = one_by_one(thaw(state), viewers)
    decided = decide(batch(60, *viewers), thaw(state))
    assert [e for e in decided if isinstance(e, ViewerJoined)] == expected
    refusals = [e for e in decided if isinstance(e, ViewersRefused)]
    assert refusals == ([ViewersRefused(refused=refused)] if refused else [])


# --- the worker's core: refusals carry no sequence, each viewer gets an answer ----------------------


def test_the_core_seals_refusals_without_a_sequence_and_answers_each_viewer() -> None:
    state = thaw(STREAM.given(started(), joined("ann", 1), banned("troll", 2)).state)
    version = state.version
    decision = execute(
        STREAMS, batch(5, arriving("bob"), arriving("troll"), arriving("ann"), arriving("cat")), state
    )
    assert [(e.type, e.sequence) for e in decision.events] == [
        ("streams.ViewerJoined", version + 1),
        ("streams.ViewerJoined", version + 2),
        ("streams.ViewersRefused", 0),
    ]
    assert decision.state.version == version + 2
    assert decision.state.viewer_count == 3
    assert decision.outcome is not None
    assert decision.outcome["status"] == "accepted"
    assert decision.outcome["stats"]["viewerCount"] == 3
    assert decision.outcome["answers"] == {
        "bob": {"status": "accepted"},
        "cat": {"status": "accepted"},
        "troll": {"status": "rejected", "reason": "user-banned", "detail": "you are banned from this stream"},
    }  # ann was watching already: not named, a no-op


def test_a_lone_join_has_no_answers_by_viewer() -> None:
    state = thaw(STREAM.given(started()).state)
    lone = JoinStream(command_id="j", issued_at=at(5), actor_id="ann", stream_id=STREAM_ID, username="@ann")
    decision = execute(STREAMS, lone, state)
    assert decision.outcome is not None
    assert decision.outcome["answers"] == {}


# --- the API: each caller reads their own answer, and nobody else's ------------------------------


def batch_outcome(**changes: Any) -> Outcome:
    fields: dict[str, Any] = dict(
        command_id="b",
        correlation_id="b",
        command_type="streams.JoinViewers",
        aggregate_id=STREAM_ID,
        status="accepted",
        actor_id="edge",
        events=[
            {"type": "streams.ViewersRefused", "sequence": 0, "payload": {"refused": {"troll": ["x", "y"]}}}
        ],
        stats={"viewerCount": 7},
        answers={
            "fan": {"status": "accepted"},
            "troll": {"status": "rejected", "reason": "user-banned", "detail": "d"},
        },
    )
    return Outcome(**{**fields, **changes})


def test_each_member_reads_their_own_answer_and_nobody_elses() -> None:
    fan, troll, watcher = (member_answer(batch_outcome(), u) for u in ("fan", "troll", "watcher"))
    assert (fan.status, fan.answers, fan.events, fan.stats) == (
        "accepted",
        {"fan": {"status": "accepted"}},
        [],
        {"viewerCount": 7},
    )
    assert (troll.status, troll.reason, troll.detail) == ("rejected", "user-banned", "d")
    assert troll.events == [] and list(troll.answers) == ["troll"]
    assert (watcher.status, watcher.answers) == ("noop", {"watcher": {"status": "noop"}})  # watching already


def test_a_batch_refused_whole_is_everyones_answer() -> None:
    whole = batch_outcome(status="rejected", reason="stream-not-live", detail="ended", answers={})
    assert member_answer(whole, "fan") == whole


# --- the API's join batcher: a quiet stream's join leaves at once, a busy one's wait together -------


class RecordingBus:
    """Stands in for the command bus: keeps what the batcher sent and answers nothing (None)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, JoinViewers]] = []

    def remember_actors(self, command_id: str, actors: frozenset[str]) -> None:
        pass

    async def execute(self, command: JoinViewers) -> None:
        self.sent.append((asyncio.get_running_loop().time(), command))


def test_joins_are_paced_like_nagle() -> None:
    async def scenario() -> tuple[list[tuple[float, list[str]]], float]:
        bus = RecordingBus()
        batcher = EdgeBatcher(bus, window_ms=50, max_items=500, join_window_ms=100)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(batcher.join(STREAM_ID, arriving("ann")))
        await asyncio.sleep(0.01)
        rush = [asyncio.ensure_future(batcher.join(STREAM_ID, arriving(u))) for u in ("bob", "cat", "dan")]
        await asyncio.gather(first, *rush)
        await asyncio.sleep(0.25)  # quiet for longer than the window
        eve_came = loop.time() - started
        await batcher.join(STREAM_ID, arriving("eve"))
        return [(at - started, [v.user_id for v in c.viewers]) for at, c in bus.sent], eve_came

    sent, eve_came = asyncio.run(scenario())
    assert [users for _, users in sent] == [["ann"], ["bob", "cat", "dan"], ["eve"]]
    (ann_at, _), (rush_at, _), (eve_at, _) = sent
    # the first join of a quiet stream waits for nothing; the rush leaves a window after it
    assert ann_at < 0.05 and rush_at - ann_at >= 0.08
    assert eve_at - eve_came < 0.05  # quiet again: eve went at once, not a window after she came
